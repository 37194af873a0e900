"""Tests of checker.py on small made-up histories: a clean one passes, and each kind of anomaly
is found where it was planted.   python3 -m unittest discover -s scripts/cluster-faults.d"""

import unittest

from checker import check

D, T = "faults", "faults-txn"


def send(prod, part, seq, offset=None, error=None):
    out = [{"k": "send", "prod": prod, "part": part, "seq": seq}]
    if offset is not None:
        out.append({"k": "ack", "prod": prod, "part": part, "seq": seq, "offset": offset})
    if error is not None:
        out.append({"k": "err", "prod": prod, "part": part, "seq": seq, "error": error})
    return out


def read(topic, part, offset, value, isos=("ru", "rc")):
    return [{"k": "read", "iso": i, "topic": topic, "part": part, "offset": offset, "value": value} for i in isos]


def txn(name, values, outcome, offsets):
    out = [{"k": "txn-send", "txn": name, "part": 0, "value": v} for v in values]
    out.append({"k": "txn", "txn": name, "outcome": outcome})
    for v, o in zip(values, offsets):
        out += read(T, 0, o, v, ("ru",))
        if outcome == "committed":
            out += read(T, 0, o, v, ("rc",))
    return out


def clean():
    h = []
    for seq in range(3):
        h += send("p0.0", 0, seq, offset=seq)
    h += send("p0.0", 0, 3, error="TimeoutException")
    for seq in range(3):
        h += read(D, 0, seq, f"p0.0/0/{seq}")
    h.append({"k": "end", "topic": D, "part": 0, "hw": 3, "lso": 3})
    h += txn("tx0", ["tx0/0", "tx0/1"], "committed", [0, 1])
    h += txn("tx1", ["tx1/0"], "aborted", [3])
    return h


def drop(history, pred):
    return [e for e in history if not pred(e)]


class CheckerTest(unittest.TestCase):
    def test_a_clean_history_has_no_anomaly(self):
        r = check(clean())
        self.assertEqual(r["anomalies"], {})
        self.assertEqual(r["figures"]["sent"], 4)
        self.assertEqual(r["figures"]["acked"], 3)
        self.assertEqual(r["figures"]["transactions"], {"committed": 1, "aborted": 1, "unknown": 0})

    def test_an_acknowledged_record_missing_is_lost(self):
        h = drop(clean(), lambda e: e["k"] == "read" and e.get("value") == "p0.0/0/2")
        h = [dict(e, hw=2, lso=2) if e["k"] == "end" else e for e in h]
        self.assertEqual(check(h)["anomalies"], {"lost": 1})

    def test_an_acknowledged_record_elsewhere_is_misplaced(self):
        h = drop(clean(), lambda e: e["k"] == "ack" and e["seq"] == 1)
        h += [{"k": "ack", "prod": "p0.0", "part": 0, "seq": 1, "offset": 2}]
        self.assertIn("misplaced", check(h)["anomalies"])

    def test_a_record_twice_is_a_duplicate(self):
        h = clean() + read(D, 0, 3, "p0.0/0/1")
        h = [dict(e, hw=4, lso=4) if e["k"] == "end" else e for e in h]
        self.assertEqual(check(h)["anomalies"]["duplicate"], 2)  # in both isolations

    def test_a_missing_offset_is_a_gap(self):
        h = drop(clean(), lambda e: e["k"] == "read" and e.get("offset") == 1 and e["topic"] == D)
        h = drop(h, lambda e: e["k"] == "ack" and e["seq"] == 1)
        h.append({"k": "err", "prod": "p0.0", "part": 0, "seq": 1, "error": "TimeoutException"})
        self.assertEqual(check(h)["anomalies"], {"gap": 1})

    def test_records_out_of_send_order_are_reordered(self):
        h = [e for e in clean() if not (e["k"] == "read" and e["topic"] == D)]
        h = drop(h, lambda e: e["k"] == "ack")
        for seq, offset in ((0, 0), (2, 1), (1, 2)):
            h += send("p0.0", 0, seq, offset=offset)[1:]
            h += read(D, 0, offset, f"p0.0/0/{seq}")
        self.assertEqual(check(h)["anomalies"], {"reorder": 2})  # read order, and ack order

    def test_an_unknown_value_is_a_phantom(self):
        h = clean() + read(D, 0, 3, "p9.0/0/0")
        h = [dict(e, hw=4, lso=4) if e["k"] == "end" else e for e in h]
        self.assertEqual(check(h)["anomalies"], {"phantom": 2})

    def test_read_committed_showing_an_aborted_transaction(self):
        h = clean() + read(T, 0, 3, "tx1/0", ("rc",))
        self.assertEqual(check(h)["anomalies"], {"aborted-read": 1})

    def test_a_committed_transaction_partly_read(self):
        h = drop(clean(), lambda e: e["k"] == "read" and e["iso"] == "rc" and e["value"] == "tx0/1")
        self.assertEqual(check(h)["anomalies"], {"committed-lost": 1})

    def test_a_transaction_of_unknown_outcome_is_all_or_nothing(self):
        whole = clean() + txn("tx2", ["tx2/0", "tx2/1"], "unknown", [5, 6])
        self.assertEqual(check(whole)["anomalies"], {})
        part = whole + read(T, 0, 5, "tx2/0", ("rc",))
        self.assertEqual(check(part)["anomalies"], {"txn-partial": 1})

    def test_read_committed_must_agree_with_read_uncommitted(self):
        h = drop(clean(), lambda e: e["k"] == "read" and e["iso"] == "rc" and e["value"] == "p0.0/0/0")
        self.assertEqual(check(h)["anomalies"], {"rc-inconsistent": 1})

    def test_a_send_without_outcome(self):
        h = clean() + send("p0.0", 0, 4)
        self.assertEqual(check(h)["anomalies"], {"no-outcome": 1})


if __name__ == "__main__":
    unittest.main()
