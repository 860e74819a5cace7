"""The recorded traffic of a real Asterisk 22 (fixtures/ami), as packets the correlator reads.

Recordings come from the AMI peer's copy (`dialer/testing/ami_recordings/`),
then `tests/data/ami/`, then the shared fixtures beside the repository. The
nurse's recorded ids (`nurse-nurse1001-s101-1`, `orig-nurse-s101`) are
rewritten to carecall's (`nurse-1001-s101-1`, `orig-nurse-1001-s101`), and the
older captures, made without ChannelId, get carecall's ids for their one call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from dialer.backends.asterisk.packets import Packet

ROOT = Path(__file__).resolve().parents[2]
PLACES = [ROOT / "dialer" / "testing" / "ami_recordings", ROOT / "tests" / "data" / "ami"] + [
    parent / "shared" / "fixtures" / "ami" for parent in ROOT.parents
]
NURSE_ID = 1001


@dataclass(frozen=True)
class Recorded:
    t: float
    out: bool  # sent by the client
    packet: Packet


def path_of(scenario: str) -> Path:
    name = f"ami-transcript-{scenario}.jsonl"
    for place in PLACES:
        if (place / name).exists():
            return place / name
    # a missing recording is a broken checkout, not a reason to test less
    pytest.fail(f"recording {name} not found in {', '.join(str(p) for p in PLACES[:2])}", pytrace=False)


def recording(scenario: str, attempt_id: int | None = None) -> list[Recorded]:
    """Every packet of a recording (banner left out), with carecall's ids."""
    text = path_of(scenario).read_text(encoding="utf-8")
    text = re.sub(r"nurse-nurse(\d+)-", r"nurse-\1-", text)
    text = re.sub(r"orig-nurse-(s\d+)", rf"orig-nurse-{NURSE_ID}-\1", text)
    out: list[Recorded] = []
    ids: dict[str, str] = {}
    for line in text.splitlines():
        item = json.loads(line)
        if "headers" not in item:
            continue
        headers = [(k, v) for k, v in item["headers"]]
        if attempt_id is not None:
            headers = _carecall_ids(headers, attempt_id, ids)
        out.append(Recorded(item["t"], item["dir"] == "out", Packet(tuple(headers))))
    return out


def _carecall_ids(
    headers: list[tuple[str, str]], attempt_id: int, ids: dict[str, str]
) -> list[tuple[str, str]]:
    """An old capture's generated Uniqueids and ActionID as carecall's ChannelIds and ActionID."""
    fields = dict(headers)
    for prefix in ("", "Dest", "LocalOne", "LocalTwo"):
        channel, uid = fields.get(prefix + "Channel", ""), fields.get(prefix + "Uniqueid", "")
        if uid.startswith("astertest-") and channel.endswith((";1", ";2")):
            ids[uid] = f"att-{attempt_id}-{channel[-1]}"
    out = []
    for k, v in headers:
        if k == "ActionID" and v.startswith("orig-"):
            v = f"orig-att-{attempt_id}"
        elif v in ids:
            v = ids[v]
        elif k in ("Linkedid", "DestLinkedid") and v.startswith("astertest-"):
            v = f"att-{attempt_id}-1"
        out.append((k, v))
    return out


def received(scenario: str, attempt_id: int | None = None) -> list[Recorded]:
    return [r for r in recording(scenario, attempt_id) if not r.out]
