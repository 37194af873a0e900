#!/usr/bin/env python3
"""The history checker of scripts/cluster-faults, in the manner of Jepsen's: it takes the
history FaultLoad.java writes (every send, its acknowledgement or error, every transaction's
outcome, and the final reads of every partition at read_uncommitted and read_committed) and
looks for what a correct acks=all, min.insync.replicas=2 cluster never shows:

  lost              an acknowledged record that the final read does not have
  misplaced         an acknowledged record read at another offset than it was acknowledged at
  duplicate         a record read at two offsets (in either isolation)
  phantom           a record read that no producer sent
  gap               an offset of the idempotent topic missing (it has no transaction markers,
                    so its offsets are dense from 0 to the end)
  reorder           a producer instance's records of one partition read out of send order, or
                    acknowledged at offsets out of send order
  rc-inconsistent   read_committed shows a record read_uncommitted does not have at that offset,
                    or the idempotent topic's two reads differ
  aborted-read      read_committed shows a record of a transaction that was aborted
  committed-lost    a committed transaction not wholly in read_committed
  txn-partial       a transaction of unknown outcome partly in read_committed
  no-outcome        a send with neither an acknowledgement nor an error

Usage: checker.py HISTORY  (prints the JSON of check_file; exit status 1 on any anomaly)
"""

import json
import sys
from collections import defaultdict

KINDS = (
    "lost", "misplaced", "duplicate", "phantom", "gap", "reorder", "rc-inconsistent",
    "aborted-read", "committed-lost", "txn-partial", "no-outcome",
)
SHOW = 5


def check(events):
    """events: the history's objects, in order. Returns {"figures", "anomalies", "examples"}."""
    anomalies = {k: 0 for k in KINDS}
    examples = defaultdict(list)

    def bad(kind, detail):
        anomalies[kind] += 1
        if len(examples[kind]) < SHOW:
            examples[kind].append(detail)

    sends = {}  # (prod, part, seq) -> outcome: None | ("ack", offset) | ("err", error)
    txn_records = defaultdict(list)  # txn -> values sent
    txn_outcome = {}
    reads = {"ru": defaultdict(dict), "rc": defaultdict(dict)}  # iso -> (topic, part) -> {offset: value}
    ends = {}
    data_topic = None
    for e in events:
        k = e["k"]
        if k == "send":
            sends[(e["prod"], e["part"], e["seq"])] = None
        elif k == "ack":
            sends[(e["prod"], e["part"], e["seq"])] = ("ack", e["offset"])
        elif k == "err":
            sends[(e["prod"], e["part"], e["seq"])] = ("err", e["error"])
        elif k == "txn-send":
            txn_records[e["txn"]].append((e["part"], e["value"]))
        elif k == "txn":
            txn_outcome[e["txn"]] = e["outcome"]
        elif k == "read":
            where = (e["topic"], e["part"])
            reads[e["iso"]][where][e["offset"]] = e["value"]
        elif k == "end":
            ends[(e["topic"], e["part"])] = (e["hw"], e["lso"])

    txn_values = {v: t for t, recs in txn_records.items() for _, v in recs}
    sent_values = {f"{p}/{part}/{s}" for (p, part, s) in sends}
    # The idempotent topic is the one whose records are producers' "name/part/seq" values.
    for iso in ("ru", "rc"):
        for where, recs in reads[iso].items():
            seen = {}
            for offset in sorted(recs):
                v = recs[offset]
                if v in seen:
                    bad("duplicate", f"{iso} {where}: {v} at {seen[v]} and {offset}")
                else:
                    seen[v] = offset
                if v in txn_values:
                    continue
                if v in sent_values:
                    data_topic = where[0]
                else:
                    bad("phantom", f"{iso} {where}: {v} at {offset}")

    # Acknowledged records: read back at their offsets, once.
    ru = reads["ru"]
    acked = 0
    for (prod, part, seq), outcome in sends.items():
        if outcome is None:
            bad("no-outcome", f"{prod} partition {part} seq {seq}")
            continue
        if outcome[0] != "ack":
            continue
        acked += 1
        value = f"{prod}/{part}/{seq}"
        at = ru[(data_topic, part)].get(outcome[1]) if data_topic else None
        if at == value:
            continue
        if data_topic and value in ru[(data_topic, part)].values():
            bad("misplaced", f"{value} acknowledged at {outcome[1]}, read at another offset")
        else:
            bad("lost", f"{value} acknowledged at {outcome[1]}")

    # Per producer instance and partition: read order and acknowledged offsets follow seq.
    if data_topic:
        for (topic, part), recs in ru.items():
            if topic != data_topic:
                continue
            offsets = sorted(recs)
            if offsets and offsets != list(range(offsets[0], offsets[-1] + 1)):
                missing = sorted(set(range(offsets[0], offsets[-1] + 1)) - set(offsets))
                for o in missing:
                    bad("gap", f"{data_topic}-{part}: offset {o} missing")
            if offsets and offsets[0] != 0:
                bad("gap", f"{data_topic}-{part}: the log starts at {offsets[0]}")
            end = ends.get((topic, part), (None, None))[0]
            if offsets and end is not None and offsets[-1] + 1 != end:
                bad("gap", f"{data_topic}-{part}: read to {offsets[-1]}, end offset {end}")
            last = {}
            for o in offsets:
                prod, p, seq = recs[o].rsplit("/", 2)
                seq = int(seq)
                if prod in last and seq <= last[prod]:
                    bad("reorder", f"{data_topic}-{part}: {recs[o]} at {o} after seq {last[prod]}")
                last[prod] = seq
        by_instance = defaultdict(list)
        for (prod, part, seq), outcome in sends.items():
            if outcome and outcome[0] == "ack":
                by_instance[(prod, part)].append((seq, outcome[1]))
        for (prod, part), acks in by_instance.items():
            acks.sort()
            for (s1, o1), (s2, o2) in zip(acks, acks[1:]):
                if o2 <= o1:
                    bad("reorder", f"{prod} partition {part}: seq {s2} acknowledged at {o2} <= {o1} of seq {s1}")

    # read_committed agrees with read_uncommitted.
    for where, recs in reads["rc"].items():
        for offset, v in recs.items():
            if ru[where].get(offset) != v:
                bad("rc-inconsistent", f"{where}: {v} at {offset} read_committed only")
    if data_topic:
        for where, recs in ru.items():
            if where[0] == data_topic and recs != reads["rc"].get(where, {}):
                bad("rc-inconsistent", f"{where}: the reads of a topic without transactions differ")

    # Transactions as read_committed shows them.
    committed_values = set()
    for where, recs in reads["rc"].items():
        committed_values.update(v for v in recs.values() if v in txn_values)
    outcomes = defaultdict(int)
    for t, recs in txn_records.items():
        outcome = txn_outcome.get(t, "unknown")
        outcomes[outcome] += 1
        present = [v for _, v in recs if v in committed_values]
        if outcome == "aborted" and present:
            bad("aborted-read", f"{t}: {present}")
        elif outcome == "committed" and len(present) != len(recs):
            bad("committed-lost", f"{t}: {len(present)} of {len(recs)} read")
        elif outcome == "unknown" and 0 < len(present) < len(recs):
            bad("txn-partial", f"{t}: {len(present)} of {len(recs)} read")

    figures = {
        "sent": len(sends),
        "acked": acked,
        "send_errors": sum(1 for o in sends.values() if o and o[0] == "err"),
        "read": sum(len(r) for w, r in ru.items() if w[0] == data_topic),
        "transactions": {k: outcomes.get(k, 0) for k in ("committed", "aborted", "unknown")},
    }
    return {
        "figures": figures,
        "anomalies": {k: v for k, v in anomalies.items() if v},
        "examples": dict(examples),
    }


def check_file(path):
    with open(path) as f:
        events = [json.loads(line) for line in f if line.strip()]
    result = check(events)
    for kind, shown in result["examples"].items():
        for detail in shown:
            print(f"{kind}: {detail}", file=sys.stderr)
    return result


if __name__ == "__main__":
    r = check_file(sys.argv[1])
    print(json.dumps({**r["figures"], "anomalies": r["anomalies"]}, sort_keys=True))
    sys.exit(1 if r["anomalies"] else 0)
