#!/usr/bin/env python3
"""Record generation and output checks for the kcat compatibility suite (standard library only).

run.sh drives kcat and the broker; this file does what is awkward in bash: build deterministic
producer input, and compare what kcat consumed with what was produced, record by record.

Producer input is what `kcat -P -K '\\t'` reads: one record per line, `key<TAB>value`. A line
without a tab has a NULL key (kcat only sets a key when it finds the delimiter); a line starting
with a tab has an empty (non-NULL) key. kcat skips empty lines, so every line is non-empty.

Consumer output is what `kcat -C -f "$FMT"` writes with FMT (keep in sync with run.sh):
    %p \\t %o \\t %T \\t %K \\t %k \\t %S \\t %s \\t %h \\n
i.e. partition, offset, timestamp, key length (-1 = NULL), key, value length, value, headers
(`name=value` joined by commas, `name=NULL` for a NULL value, nothing when there are none).

Subcommands (each exits 1 with a short explanation on the first mismatches):
  gen FILE --count N --prefix P [--seed S] [--big-every K] [--big-size B] [--keys cycle|none]
  feed FILE --seconds S                                      FILE to stdout, slowly
  verify --input FILE --output FILE [--partition P] [--first-offset O] [--headers H]
         [--ts-min MS --ts-max MS]
  spread --input FILE --output FILE --partitions N            records spread by the partitioner
  slice --output FILE --from-offset A [--to-offset B]        expected rows for -o tests
  first-offset-at --output FILE --ts MS                      what ListOffsets(ts) must return
  timestamps --output FILE                                   distinct timestamps, one per line
  metadata --json FILE --bootstrap HOST:PORT [--topic NAME:PARTITIONS ...] [--absent NAME ...]
  json-envelope --json FILE --output FILE --tstype create|logappend
  batches --log FILE --codec C                               check librdkafka's MessageSet lines
  scram-user --bootstrap HOST:PORT --user U --password P     create a SCRAM-SHA-512 user (kcat
                                                             has no admin API: a raw request)
"""

import argparse
import json
import random
import re
import sys
import time

FIELDS = ("partition", "offset", "timestamp", "key_len", "key", "value_len", "value", "headers")
MAX_REPORTED = 8


class Failed(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Producer input


def gen(args):
    """Deterministic records with a mix of NULL, empty and repeated keys and varied values.

    Values carry their index so ordering mistakes are easy to read in a diff, UTF-8 so nothing
    assumes ASCII, and every --big-every'th value is large so batches span several fetches.
    """
    rng = random.Random(args.seed if args.seed is not None else args.prefix)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 -_=,:;/ÄéüÆ日本語"
    with open(args.file, "w", encoding="utf-8", newline="\n") as f:
        for i in range(args.count):
            body_len = rng.choice((0, 1, 7, 30, 100, 250, 600))
            if args.big_every and i % args.big_every == args.big_every - 1:
                body_len = args.big_size
            value = f"{args.prefix}-{i:06d}-" + "".join(rng.choice(alphabet) for _ in range(body_len))
            if args.keys == "none" or i % 10 == 0:
                f.write(f"{value}\n")  # no tab: NULL key
            elif i % 10 == 1:
                f.write(f"\t{value}\n")  # empty key
            else:
                f.write(f"key-{rng.randrange(50)}\t{value}\n")


def feed(args):
    """Copy FILE to stdout spread evenly over --seconds, so producer timestamps advance within
    the run (kcat stamps each record when it reads it)."""
    with open(args.file, "rb") as f:
        lines = f.read().split(b"\n")[:-1]
    chunks = max(1, len(lines) // 10)
    out = sys.stdout.buffer
    try:
        for i in range(0, len(lines), 10):
            out.write(b"".join(line + b"\n" for line in lines[i:i + 10]))
            out.flush()
            time.sleep(args.seconds / chunks)
    except BrokenPipeError:
        sys.exit(1)  # the producer died; it reports why


def read_input(path):
    """Expected (key or None, value) pairs, as bytes, in produce order."""
    records = []
    with open(path, "rb") as f:
        for line in f.read().split(b"\n"):
            if not line:
                continue
            if b"\t" in line:
                key, value = line.split(b"\t", 1)
            else:
                key, value = None, line
            records.append((key, value))
    return records


# ---------------------------------------------------------------------------------------------
# Consumer output


def read_output(path, partition=None):
    rows = []
    with open(path, "rb") as f:
        data = f.read()
    for n, line in enumerate(data.split(b"\n")[:-1], 1):
        parts = line.split(b"\t")
        if len(parts) != len(FIELDS):
            raise Failed(f"{path}:{n}: expected {len(FIELDS)} tab-separated fields, got {len(parts)}: {line[:120]!r}")
        row = dict(zip(FIELDS, parts))
        for name in ("partition", "offset", "timestamp", "key_len", "value_len"):
            row[name] = int(row[name])
        if partition is None or row["partition"] == partition:
            rows.append(row)
    if data and not data.endswith(b"\n"):
        raise Failed(f"{path}: output does not end with a newline (truncated?)")
    return rows


def verify(args):
    expected = read_input(args.input)
    rows = read_output(args.output, args.partition)
    headers = args.headers.encode() if args.headers is not None else None
    problems = []

    def problem(msg):
        problems.append(msg)
        if len(problems) >= MAX_REPORTED:
            raise Failed("\n".join(problems))

    if len(rows) != len(expected):
        problem(f"consumed {len(rows)} records, produced {len(expected)}")
    prev_ts = None
    for i, (row, (key, value)) in enumerate(zip(rows, expected)):
        where = f"record #{i} (offset {row['offset']})"
        if row["offset"] != args.first_offset + i:
            problem(f"{where}: offset {row['offset']}, expected {args.first_offset + i} (offsets must be dense and in order)")
        if args.partition is not None and row["partition"] != args.partition:
            problem(f"{where}: partition {row['partition']}, expected {args.partition}")
        if key is None:
            if row["key_len"] != -1:
                problem(f"{where}: key {row['key'][:40]!r} (len {row['key_len']}), expected NULL")
        elif row["key"] != key or row["key_len"] != len(key):
            problem(f"{where}: key {row['key'][:40]!r} (len {row['key_len']}), expected {key[:40]!r}")
        if row["value"] != value or row["value_len"] != len(value):
            problem(f"{where}: value {row['value'][:50]!r}... (len {row['value_len']}), expected {value[:50]!r}... (len {len(value)})")
        if headers is not None and row["headers"] != headers:
            problem(f"{where}: headers {row['headers'][:100]!r}, expected {headers!r}")
        ts = row["timestamp"]
        if args.ts_min is not None and not args.ts_min <= ts <= args.ts_max:
            problem(f"{where}: timestamp {ts} outside the produce window [{args.ts_min}, {args.ts_max}]")
        if prev_ts is not None and ts < prev_ts:
            problem(f"{where}: timestamp {ts} went backwards from {prev_ts} (one producer, CreateTime)")
        prev_ts = ts
    if problems:
        raise Failed("\n".join(problems))
    print(f"ok: {len(rows)} records match")


def spread(args):
    """Records produced without -p: each exactly once, each partition dense from offset 0 and in
    produce order, and every non-empty key on a single partition (librdkafka's partitioner hashes it)."""
    expected = read_input(args.input)
    index = {value: i for i, (_, value) in enumerate(expected)}
    rows = read_output(args.output)
    problems = []
    seen = set()
    last = {}  # partition -> (offset, input index) of its previous row
    key_partition = {}
    for row in rows:
        p = row["partition"]
        i = index.get(row["value"])
        if not 0 <= p < args.partitions:
            problems.append(f"record in partition {p}, topic has {args.partitions}")
        if i is None or i in seen:
            problems.append(f"{p}@{row['offset']}: unexpected or duplicated value {row['value'][:40]!r}")
            continue
        seen.add(i)
        prev_offset, prev_i = last.get(p, (-1, -1))
        if row["offset"] != prev_offset + 1:
            problems.append(f"partition {p}: offset {row['offset']} follows {prev_offset} (not dense from 0)")
        if i < prev_i:
            problems.append(f"partition {p}: record #{i} stored after #{prev_i} (produce order lost)")
        last[p] = (row["offset"], i)
        key = expected[i][0]
        key_ok = row["key_len"] == -1 if key is None else row["key"] == key
        if not key_ok:
            problems.append(f"{p}@{row['offset']}: key {row['key'][:40]!r}, expected {key!r}")
        # consistent_random hashes non-empty keys; NULL and empty keys go to random partitions.
        if key and key_partition.setdefault(key, p) != p:
            problems.append(f"key {key!r} found in partitions {key_partition[key]} and {p}")
        if len(problems) >= MAX_REPORTED:
            break
    if len(seen) != len(expected) and len(problems) < MAX_REPORTED:
        problems.append(f"consumed {len(seen)} distinct records, produced {len(expected)}")
    if problems:
        raise Failed("\n".join(problems[:MAX_REPORTED]))
    print(f"ok: {len(rows)} records over {len(last)} partitions " + str({p: o + 1 for p, (o, _) in sorted(last.items())}))


def slice_rows(args):
    """Print the rows of --output whose offsets are in [from, to) (the expected result of -o)."""
    with open(args.output, "rb") as f:
        lines = f.read().split(b"\n")[:-1]
    out = sys.stdout.buffer
    for line in lines:
        offset = int(line.split(b"\t", 2)[1])
        if offset >= args.from_offset and (args.to_offset is None or offset < args.to_offset):
            out.write(line + b"\n")


def first_offset_at(args):
    """The earliest offset whose timestamp is >= ts, or -1: ListOffsets semantics (KIP-79)."""
    for row in read_output(args.output):
        if row["timestamp"] >= args.ts:
            print(row["offset"])
            return
    print(-1)


def timestamps(args):
    seen = []
    for row in read_output(args.output):
        if not seen or seen[-1] != row["timestamp"]:
            seen.append(row["timestamp"])
    print("\n".join(str(t) for t in seen))


# ---------------------------------------------------------------------------------------------
# kcat -L -J and -J envelopes


def metadata(args):
    with open(args.json, encoding="utf-8") as f:
        md = json.load(f)
    brokers = md.get("brokers", [])
    problems = []
    if len(brokers) != 1:
        problems.append(f"expected exactly 1 broker, got {brokers}")
    else:
        # librdkafka reconnects to the advertised host:port, so it must be the address we listen on.
        if brokers[0]["name"] != args.bootstrap:
            problems.append(f"broker advertises {brokers[0]['name']!r}, expected {args.bootstrap!r}")
        if md.get("controllerid") != brokers[0]["id"]:
            problems.append(f"controllerid {md.get('controllerid')} is not the broker id {brokers[0]['id']}")
    broker_ids = {b["id"] for b in brokers}
    topics = {t["topic"]: t for t in md.get("topics", [])}
    for spec in args.topic or []:
        name, _, count = spec.partition(":")
        topic = topics.get(name)
        if topic is None:
            problems.append(f"topic {name!r} missing from metadata (have {sorted(topics)})")
            continue
        if "error" in topic:
            problems.append(f"topic {name!r} has error {topic['error']!r}")
        parts = sorted(topic["partitions"], key=lambda p: p["partition"])
        if [p["partition"] for p in parts] != list(range(int(count))):
            problems.append(f"topic {name!r} partitions {[p['partition'] for p in parts]}, expected 0..{int(count) - 1}")
        for p in parts:
            replicas = [r["id"] for r in p.get("replicas", [])]
            isrs = [r["id"] for r in p.get("isrs", [])]
            if "error" in p:
                problems.append(f"{name}[{p['partition']}] has error {p['error']!r}")
            if p["leader"] not in broker_ids or replicas != [p["leader"]] or isrs != [p["leader"]]:
                problems.append(f"{name}[{p['partition']}] leader {p['leader']} replicas {replicas} isrs {isrs}, expected all = the broker id")
    for name in args.absent or []:
        if name in topics:
            problems.append(f"topic {name!r} exists but should not")
    if problems:
        raise Failed("\n".join(problems))
    print(f"ok: broker {brokers[0]['id']} at {brokers[0]['name']}, {len(topics)} topics")


def json_envelope(args):
    """-J envelopes must agree with the -f output for the same offsets, and carry the ts type."""
    rows = {row["offset"]: row for row in read_output(args.output)}
    problems = []
    count = 0
    with open(args.json, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            msg = json.loads(line)
            count += 1
            row = rows.get(msg["offset"])
            if msg.get("tstype") != args.tstype:
                problems.append(f"offset {msg['offset']}: tstype {msg.get('tstype')!r}, expected {args.tstype!r}")
            if row is None:
                problems.append(f"offset {msg['offset']} not in the -f output")
            elif msg["ts"] != row["timestamp"] or (msg["payload"] or "").encode() != row["value"]:
                problems.append(f"offset {msg['offset']}: -J says ts {msg['ts']} payload {msg['payload'][:40]!r}, -f said {row['timestamp']} {row['value'][:40]!r}")
    if count == 0:
        problems.append("no -J envelopes")
    if problems:
        raise Failed("\n".join(problems[:MAX_REPORTED]))
    print(f"ok: {count} envelopes, tstype {args.tstype}")


# ---------------------------------------------------------------------------------------------
# librdkafka debug output (-d msg)

MESSAGESET = re.compile(
    r"Produce MessageSet with (\d+) message\(s\) \((\d+) bytes, ApiVersion (\d+), MsgVersion (\d+), "
    r"MsgId \d+, BaseSeq (-?\d+), (PID\{[^}]*\}), (\w+)\)")


def batches(args):
    """Every multi-record batch must use the requested codec, v2 records, and (idempotent) a PID.

    librdkafka silently sends batches uncompressed when it thinks the broker cannot take the
    codec (ApiVersions-derived features), so checking the consumed records alone would not notice.
    It also sends a batch uncompressed when compressing would not make it smaller, which happens
    for tiny batches: those are ignored.
    """
    with open(args.log, encoding="utf-8", errors="replace") as f:
        sets = [m.groups() for m in MESSAGESET.finditer(f.read())]
    codec = "uncompressed" if args.codec == "none" else args.codec
    problems = []
    if not sets:
        problems.append("no 'Produce MessageSet' debug lines (was -d msg given?)")
    with_codec = [s for s in sets if s[6] == codec]
    if not with_codec:
        problems.append(f"no batch was sent with codec {codec}: {sorted({s[6] for s in sets})} "
                        "(librdkafka disabled it after ApiVersions; see the FEATURE debug lines)")
    wrong = [s for s in sets if int(s[0]) >= 20 and s[6] != codec]
    if wrong:
        problems.append(f"{len(wrong)} of {len(sets)} batches (e.g. {wrong[0][0]} records) sent {wrong[0][6]}, expected {codec}")
    for count, size, api, msgver, seq, pid, used in sets:
        if msgver != "2":
            problems.append(f"batch sent as MsgVersion {msgver} with Produce v{api}, expected MsgVersion 2")
        if args.idempotent and (pid == "PID{Invalid}" or int(seq) < 0):
            problems.append(f"idempotent batch without a producer id/sequence: {pid} BaseSeq {seq}")
    if problems:
        raise Failed("\n".join(problems[:MAX_REPORTED]))
    print(f"ok: {len(sets)} batches, {len(with_codec)} with {codec}, Produce v{sets[0][2]}")


def scram_user(args):
    """AlterUserScramCredentials v0 (API key 51, flexible) upserting a SCRAM-SHA-512 credential,
    as kafka-configs --add-config 'SCRAM-SHA-512=[iterations=N,password=P]' sends it: the
    client salts and hashes the password (RFC 5802's Hi), the broker stores what it derives."""
    import hashlib
    import os
    import socket
    import struct

    def uvarint(n):
        out = b""
        while n >= 0x80:
            out += bytes([(n & 0x7F) | 0x80])
            n >>= 7
        return out + bytes([n])

    def compact(b):
        return uvarint(len(b) + 1) + b

    salt = os.urandom(32)
    salted = hashlib.pbkdf2_hmac("sha512", args.password.encode(), salt, args.iterations)
    upsertion = (compact(args.user.encode()) + struct.pack(">bi", 2, args.iterations)
                 + compact(salt) + compact(salted) + b"\x00")
    body = uvarint(1) + uvarint(2) + upsertion + b"\x00"  # no deletions, one upsertion
    client_id = b"kcat-compat"
    header = struct.pack(">hhih", 51, 0, 1, len(client_id)) + client_id + b"\x00"
    host, port = args.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        request = header + body
        sock.sendall(struct.pack(">i", len(request)) + request)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise Failed("the broker closed the connection")
            data += chunk
    # correlation id, header tags, throttle time, results (one), user name, error code
    at = 4 + 4 + 1 + 4 + 1
    name_len = data[at] - 1
    at += 1 + name_len
    (error_code,) = struct.unpack(">h", data[at:at + 2])
    if error_code != 0:
        raise Failed(f"AlterUserScramCredentials for {args.user}: error code {error_code}")
    print(f"SCRAM-SHA-512 credential for {args.user} ({args.iterations} iterations)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("gen")
    s.add_argument("file")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--prefix", required=True)
    s.add_argument("--seed", type=int)
    s.add_argument("--big-every", type=int, default=0)
    s.add_argument("--big-size", type=int, default=20000)
    s.add_argument("--keys", choices=("cycle", "none"), default="cycle")
    s.set_defaults(func=gen)

    s = sub.add_parser("feed")
    s.add_argument("file")
    s.add_argument("--seconds", type=float, required=True)
    s.set_defaults(func=feed)

    s = sub.add_parser("verify")
    s.add_argument("--input", required=True)
    s.add_argument("--output", required=True)
    s.add_argument("--partition", type=int)
    s.add_argument("--first-offset", type=int, default=0)
    s.add_argument("--headers")
    s.add_argument("--ts-min", type=int)
    s.add_argument("--ts-max", type=int)
    s.set_defaults(func=verify)

    s = sub.add_parser("spread")
    s.add_argument("--input", required=True)
    s.add_argument("--output", required=True)
    s.add_argument("--partitions", type=int, required=True)
    s.set_defaults(func=spread)

    s = sub.add_parser("slice")
    s.add_argument("--output", required=True)
    s.add_argument("--from-offset", type=int, required=True)
    s.add_argument("--to-offset", type=int)
    s.set_defaults(func=slice_rows)

    s = sub.add_parser("first-offset-at")
    s.add_argument("--output", required=True)
    s.add_argument("--ts", type=int, required=True)
    s.set_defaults(func=first_offset_at)

    s = sub.add_parser("timestamps")
    s.add_argument("--output", required=True)
    s.set_defaults(func=timestamps)

    s = sub.add_parser("metadata")
    s.add_argument("--json", required=True)
    s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", action="append", help="NAME:PARTITIONS that must be listed")
    s.add_argument("--absent", action="append", help="topic that must not be listed")
    s.set_defaults(func=metadata)

    s = sub.add_parser("json-envelope")
    s.add_argument("--json", required=True)
    s.add_argument("--output", required=True)
    s.add_argument("--tstype", required=True)
    s.set_defaults(func=json_envelope)

    s = sub.add_parser("batches")
    s.add_argument("--log", required=True)
    s.add_argument("--codec", required=True)
    s.add_argument("--idempotent", action="store_true")
    s.set_defaults(func=batches)

    s = sub.add_parser("scram-user")
    s.add_argument("--bootstrap", required=True)
    s.add_argument("--user", required=True)
    s.add_argument("--password", required=True)
    s.add_argument("--iterations", type=int, default=8192)
    s.set_defaults(func=scram_user)

    args = p.parse_args()
    try:
        args.func(args)
    except Failed as e:
        print(e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
