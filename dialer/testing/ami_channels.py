"""What the simulated Asterisk knows of its live channels, conferences and bridges, and how it lists them.

The table learns everything from the events the switch emits, as a client
would (Newchannel, snapshot headers, Newexten, VarSet, Bridge*, Confbridge*,
Hangup), so the answers to the reconciliation actions always agree with the
stream. The answers' shapes are those recorded in `conf-reconcile` and
`conf-reconnect-2`: `CoreShowChannels` lists both halves of every Local
channel, newest first; `Status` takes a name or a Uniqueid and `Variables:`;
`ConfbridgeList`, `ConfbridgeListRooms`, `BridgeList`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dialer.testing.ami_wire import Headers, header

SNAPSHOT = [
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
]
_BRIDGE = [
    "BridgeUniqueid",
    "BridgeType",
    "BridgeTechnology",
    "BridgeCreator",
    "BridgeName",
    "BridgeNumChannels",
]


def success(action_id: str | None, *extra: tuple[str, str]) -> Headers:
    return [("Response", "Success"), *action_ids(action_id), *extra]


def error(action_id: str | None, message: str) -> Headers:
    return [("Response", "Error"), *action_ids(action_id), ("Message", message)]


def action_ids(action_id: str | None) -> list[tuple[str, str]]:
    """Asterisk echoes the ActionID when the client sent one."""
    return [] if action_id is None else [("ActionID", action_id)]


@dataclass(eq=False)
class Channel:
    snapshot: dict[str, str]
    created: float
    answered: float | None = None
    application: str = ""
    data: str = ""
    bridge: str = ""
    variables: dict[str, str] = field(default_factory=dict)


class ChannelTable:
    """Live channels by Uniqueid (creation order), conferences by name (members in join order), bridges."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.channels: dict[str, Channel] = {}
        self.conferences: dict[str, list[str]] = {}
        self.bridges: dict[str, dict[str, str]] = {}
        self.nurses: set[str] = set()  # Uniqueids of nurses' legs: the marked users of their conferences

    def track(self, headers: Headers) -> None:
        name = headers[0][1]
        uid = header(headers, "Uniqueid") or ""
        now = time.monotonic()
        if name == "Newchannel":
            self.channels[uid] = Channel({}, now)
        channel = self.channels.get(uid)
        if (
            channel is not None
            and name != "OriginateResponse"
            and header(headers, "ChannelState") is not None
        ):
            channel.snapshot.update((k, v) for k, v in headers if k in SNAPSHOT)
            if channel.answered is None and channel.snapshot.get("ChannelState") == "6":
                channel.answered = now
        self._track_conferences(name, uid, headers)
        if channel is None:
            return
        if name == "Newexten":
            channel.application = header(headers, "Application") or ""
            channel.data = header(headers, "AppData") or ""
        elif name == "VarSet":
            channel.variables[header(headers, "Variable") or ""] = header(headers, "Value") or ""
        elif name == "BridgeEnter":
            channel.bridge = header(headers, "BridgeUniqueid") or ""
        elif name == "BridgeLeave":
            channel.bridge = ""
        elif name == "Hangup":
            del self.channels[uid]
            self.nurses.discard(uid)

    def _track_conferences(self, name: str, uid: str, headers: Headers) -> None:
        bridge = header(headers, "BridgeUniqueid")
        if name == "BridgeDestroy":
            self.bridges.pop(bridge or "", None)
        elif bridge is not None:
            self.bridges.setdefault(bridge, {}).update((k, v) for k, v in headers if k in _BRIDGE)
        conference = header(headers, "Conference") or ""
        if name == "ConfbridgeStart":
            self.conferences.setdefault(conference, [])
        elif name == "ConfbridgeEnd":
            self.conferences.pop(conference, None)
        elif name == "ConfbridgeJoin":
            self.conferences.setdefault(conference, []).append(uid)
        elif name == "ConfbridgeLeave" and uid in self.conferences.get(conference, []):
            self.conferences[conference].remove(uid)

    def resolve(self, name_or_uid: str) -> str | None:
        """A channel's Uniqueid from its name or its Uniqueid (ChannelId): Asterisk accepts both."""
        if name_or_uid in self.channels:
            return name_or_uid
        return next((u for u, c in self.channels.items() if c.snapshot.get("Channel") == name_or_uid), None)

    def conference_of(self, uid: str) -> str | None:
        return next((name for name, members in self.conferences.items() if uid in members), None)

    def refreshed(self, headers: Headers) -> Headers:
        """An event's channel-state headers as the live channel has them now."""
        channel = self.channels.get(header(headers, "Uniqueid") or "")
        if channel is None:
            return headers
        keep = ("ChannelState", "ChannelStateDesc", "Context", "Exten", "Priority")
        return [(k, channel.snapshot.get(k, v) if k in keep else v) for k, v in headers]

    # -- the answers to reconciliation ----------------------------------------------------------

    def _seconds(self, since: float | None) -> int:
        """Simulated seconds: the switch's time runs `speed` times faster than the wall clock."""
        return 0 if since is None else int((time.monotonic() - since) * self.speed)

    @staticmethod
    def _listing(action_id: str | None, message: str, items: list[Headers], complete: str) -> list[Headers]:
        head = success(action_id, ("EventList", "start"), ("Message", message))
        tail = [("Event", complete), *action_ids(action_id), ("EventList", "Complete")]
        return [head, *items, [*tail, ("ListItems", str(len(items)))]]

    def core_show_channels(self, action_id: str | None) -> list[Headers]:
        items = []
        for channel in reversed(self.channels.values()):
            seconds = self._seconds(channel.created)
            items.append(
                [
                    ("Event", "CoreShowChannel"),
                    *action_ids(action_id),
                    *((k, channel.snapshot.get(k, "")) for k in SNAPSHOT),
                    ("Application", channel.application),
                    ("ApplicationData", channel.data),
                    ("Duration", f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"),
                    ("BridgeId", channel.bridge),
                ]
            )
        return self._listing(action_id, "Channels will follow", items, "CoreShowChannelsComplete")

    def status(self, action_id: str | None, name: str | None, wanted: list[str]) -> list[Headers]:
        if name:
            uid = self.resolve(name)
            if uid is None:
                return [error(action_id, "No such channel")]
            uids = [uid]
        else:
            uids = list(self.channels)
        items = [self._status_item(self.channels[u], wanted, action_id) for u in uids]
        head = success(action_id, ("EventList", "start"), ("Message", "Channel status will follow"))
        count = str(len(items))
        tail = [("Event", "StatusComplete"), *action_ids(action_id), ("EventList", "Complete")]
        return [head, *items, [*tail, ("ListItems", count), ("Items", count)]]

    def _status_item(self, channel: Channel, wanted: list[str], action_id: str | None) -> Headers:
        snap = channel.snapshot
        return [
            ("Event", "Status"),
            ("Privilege", "Call"),
            *((k, snap.get(k, "")) for k in SNAPSHOT),
            ("Type", "Local"),
            ("DNID", ""),
            ("EffectiveConnectedLineNum", snap.get("ConnectedLineNum", "")),
            ("EffectiveConnectedLineName", snap.get("ConnectedLineName", "")),
            ("TimeToHangup", "0"),
            ("BridgeID", channel.bridge),
            ("Application", channel.application),
            ("Data", channel.data),
            ("Nativeformats", "(slin)"),
            ("Readformat", "slin"),
            ("Readtrans", ""),
            ("Writeformat", "slin"),
            ("Writetrans", ""),
            ("Callgroup", "0"),
            ("Pickupgroup", "0"),
            ("Seconds", str(self._seconds(channel.created))),
            *(("Variable", f"{v}={channel.variables.get(v, '')}") for v in wanted),
            *action_ids(action_id),
        ]

    def confbridge_list(self, action_id: str | None, name: str | None) -> list[Headers]:
        if not name:
            return [error(action_id, "No Conference name provided.")]
        if not self.conferences:
            return [error(action_id, "No active conferences.")]
        if name not in self.conferences:
            return [error(action_id, "No Conference by that name found.")]
        items = []
        for uid in self.conferences[name]:
            channel = self.channels.get(uid)
            if channel is None:  # its ConfbridgeLeave may come after its Hangup
                continue
            nurse = uid in self.nurses
            flags = [
                ("Admin", "No"),
                ("MarkedUser", "Yes" if nurse else "No"),
                ("WaitMarked", "No"),
                ("EndMarked", "No" if nurse else "Yes"),
                ("EndMarkedAny", "No"),
                ("Waiting", "No"),
                ("Muted", "No"),
                ("Talking", "No"),
                ("AnsweredTime", str(self._seconds(channel.answered))),
            ]
            snapshot = [(k, channel.snapshot.get(k, "")) for k in SNAPSHOT]
            head = [("Event", "ConfbridgeList"), *action_ids(action_id), ("Conference", name)]
            items.append([*head, *flags, *snapshot])
        return self._listing(action_id, "Confbridge user list will follow", items, "ConfbridgeListComplete")

    def confbridge_list_rooms(self, action_id: str | None) -> list[Headers]:
        if not self.conferences:
            return [error(action_id, "No active conferences.")]
        items = [
            [
                ("Event", "ConfbridgeListRooms"),
                *action_ids(action_id),
                ("Conference", name),
                ("Parties", str(len(members))),
                ("Marked", str(sum(1 for u in members if u in self.nurses))),
                ("Locked", "No"),
                ("Muted", "No"),
            ]
            for name, members in self.conferences.items()
        ]
        message = "Confbridge conferences will follow"
        return self._listing(action_id, message, items, "ConfbridgeListRoomsComplete")

    def bridge_list(self, action_id: str | None) -> list[Headers]:
        items = [
            [
                ("Event", "BridgeListItem"),
                *action_ids(action_id),
                *bridge.items(),
                ("BridgeVideoSourceMode", "none"),
            ]
            for bridge in self.bridges.values()
        ]
        return self._listing(action_id, "Bridge listing will follow", items, "BridgeListComplete")
