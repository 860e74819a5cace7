"""Peers that stand in for the far end of carecall's wires, shipped so a site can test its own set-up.

`ami_peer.AmiPeer`: an Asterisk Manager Interface server that plays the recorded traffic of a real
Asterisk 22; `ami_replay.AmiReplay`: the same captures at full speed; `ami_call_replay.AmiCallReplay`:
a recorded flow for every call a client originates, all at full speed (`scripts/bench_ami.py`);
`twilio_peer.TwilioPeer`: Twilio's REST API on 127.0.0.1, the real SDK's own HTTP client pointed at
it, sending correctly signed callbacks to carecall's webhooks.
"""
