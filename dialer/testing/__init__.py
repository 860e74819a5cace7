"""Peers that stand in for the far end of carecall's wires, shipped so a site can test its own set-up.

`ami_peer.AmiPeer`: an Asterisk Manager Interface server that plays the recorded traffic of a real
Asterisk 22; `ami_replay.AmiReplay`: the same captures at full speed, for `scripts/bench_ami.py`.
"""
