#!/usr/bin/env python3
"""Generates Rust codecs, in the vendored kafka-protocol crate's shape, for Kafka message specs
the crate (generated from Kafka 4.1.0) lacks. Only what those specs use is supported: flexible
versions from 0 ("0+"), no tagged fields of their own (tagged fields are kept as unknown ones),
the primitive types int8/16/32/64, uint16, bool, string and uuid, arrays of those or of structs, and
(nullable) structs.

    gen.py <protocol-path> <out.rs> <spec.json>...

`protocol-path` is `crate::protocol` inside the crate, `kafka_protocol::protocol` outside it.
Several specs go to one module (their common structs, by name, must then agree). Run it again
after changing a spec; the output is checked in (see ../PATCHED.md).
"""
import json
import re
import sys

PRIM = {
    "bool": ("bool", "types::Boolean", "false"),
    "int8": ("i8", "types::Int8", "0"),
    "int16": ("i16", "types::Int16", "0"),
    "int32": ("i32", "types::Int32", "0"),
    "int64": ("i64", "types::Int64", "0"),
    "uint16": ("u16", "types::UInt16", "0"),
    "string": ("StrBytes", "types::CompactString", "Default::default()"),
    "uuid": ("Uuid", "types::Uuid", "Uuid::nil()"),
}
ENTITY = {"groupId": "super::GroupId", "topicName": "super::TopicName"}


def versions(spec, lo, hi):
    """The set of versions a "0+", "1+", "0-1", "0" or "none" string names, within lo..hi."""
    if spec is None or spec == "none":
        return set()
    if spec.endswith("+"):
        return set(range(int(spec[:-1]), hi + 1))
    if "-" in spec:
        a, b = spec.split("-")
        return set(range(int(a), int(b) + 1))
    return {int(spec)}


def snake(name):
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    s = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", s)
    return s.lower()


def cond(vs, lo, hi):
    """A Rust condition on `version` that holds for the versions in vs."""
    if vs == set(range(lo, hi + 1)):
        return None
    if not vs:
        return "false"
    a, b = min(vs), max(vs)
    if vs != set(range(a, b + 1)):
        raise SystemExit("non-contiguous versions")
    if a == b:
        return f"version == {a}"
    if b == hi:
        return f"version >= {a}"
    return f"version >= {a} && version <= {b}"


class Gen:
    def __init__(self, spec, protocol):
        self.spec = spec
        self.protocol = protocol
        self.lo, self.hi = min(versions(spec["validVersions"], 0, 99)), max(
            versions(spec["validVersions"], 0, 99)
        )
        if versions(spec["flexibleVersions"], self.lo, self.hi) != set(range(self.lo, self.hi + 1)):
            raise SystemExit("only always-flexible messages are supported")
        self.common = {s["name"]: s for s in spec.get("commonStructs", [])}
        self.structs = []  # (name, fields), nested first

    def field(self, f):
        """(rust type, coder expression, default expression, nullable set, versions set)"""
        t = f["type"]
        vs = versions(f.get("versions"), self.lo, self.hi)
        nv = versions(f.get("nullableVersions"), self.lo, self.hi)
        arr = t.startswith("[]")
        base = t[2:] if arr else t
        if base in PRIM:
            rty, coder, dflt = PRIM[base]
            if base == "string" and f.get("entityType") in ENTITY and self.protocol == "crate::protocol":
                rty = ENTITY[f["entityType"]]
            struct = False
        else:
            rty, coder, dflt = base, "types::Struct { version }", "Default::default()"
            struct = True
            if "fields" in f:
                self.collect(base, f["fields"])
            elif base in self.common:
                self.collect(base, self.common[base]["fields"])
            else:
                raise SystemExit(f"unknown type {base}")
        if arr:
            rty, coder, dflt = f"Vec<{rty}>", f"types::CompactArray({coder})", "Default::default()"
        elif struct and nv:
            coder = "types::OptionStruct { version }"
        if nv:
            rty = f"Option<{rty}>"
        d = f.get("default")
        if nv and (d is None or d == "null"):
            dflt = "None"
        elif d is not None and not arr and not struct:
            if base == "bool":
                dflt = str(d).lower()
            elif base == "string":
                dflt = f'StrBytes::from_static_str("{d}")' if d else "Default::default()"
            else:
                dflt = str(d)
            if nv:
                dflt = f"Some({dflt})"
        return rty, coder, dflt, vs

    def collect(self, name, fields):
        if any(n == name for n, _ in self.structs):
            return
        fs = []
        for f in fields:
            if "taggedVersions" in f:
                continue  # kept as an unknown tagged field
            fs.append((snake(f["name"]), f, *self.field(f)))
        self.structs.append((name, fs))

    def emit_struct(self, name, fs, top):
        p = []
        lo, hi = self.lo, self.hi
        p.append(f"/// Valid versions: {lo}-{hi}")
        p.append("#[non_exhaustive]")
        p.append("#[derive(Debug, Clone, PartialEq)]")
        p.append(f"pub struct {name} {{")
        for fname, f, rty, _, _, vs in fs:
            about = f.get("about", "").replace("\n", " ")
            p.append(f"    /// {about}")
            p.append("    ///")
            p.append(f"    /// Supported API versions: {f.get('versions')}")
            p.append(f"    pub {fname}: {rty},")
        p.append("    /// Other tagged fields")
        p.append("    pub unknown_tagged_fields: BTreeMap<i32, Bytes>,")
        p.append("}")
        p.append("")
        p.append(f"impl {name} {{")
        for fname, f, rty, _, _, _ in fs:
            p.append(f"    /// Sets `{fname}` to the passed value.")
            p.append(f"    pub fn with_{fname}(mut self, value: {rty}) -> Self {{")
            p.append(f"        self.{fname} = value;")
            p.append("        self")
            p.append("    }")
        p.append("}")
        p.append("")
        # encode / compute_size
        p.append(f"impl Encodable for {name} {{")
        p.append("    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {")
        p.append(f"        if version < {lo} || version > {hi} {{")
        p.append('            bail!("specified version not supported by this message type");')
        p.append("        }")
        for fname, f, rty, coder, dflt, vs in fs:
            c = cond(vs, lo, hi)
            if c is None:
                p.append(f"        {coder}.encode(buf, &self.{fname})?;")
            elif f.get("ignorable"):
                # Kafka's generated writers drop an ignorable field the version lacks.
                p.append(f"        if {c} {{")
                p.append(f"            {coder}.encode(buf, &self.{fname})?;")
                p.append("        }")
            else:
                p.append(f"        if {c} {{")
                p.append(f"            {coder}.encode(buf, &self.{fname})?;")
                p.append("        } else {")
                p.append(f"            let default: {rty} = {dflt};")
                p.append(f"            if self.{fname} != default {{")
                p.append('                bail!("A field is set that is not available on the selected protocol version");')
                p.append("            }")
                p.append("        }")
        p.append("        write_tagged_fields(buf, &self.unknown_tagged_fields)")
        p.append("    }")
        p.append("    fn compute_size(&self, version: i16) -> Result<usize> {")
        p.append("        let mut total_size = 0;")
        for fname, f, rty, coder, dflt, vs in fs:
            c = cond(vs, lo, hi)
            line = f"total_size += {coder}.compute_size(&self.{fname})?;"
            p.append(f"        {line}" if c is None else f"        if {c} {{ {line} }}")
        p.append("        total_size += tagged_fields_size(&self.unknown_tagged_fields)?;")
        p.append("        Ok(total_size)")
        p.append("    }")
        p.append("}")
        p.append("")
        p.append(f"impl Decodable for {name} {{")
        p.append("    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {")
        p.append(f"        if version < {lo} || version > {hi} {{")
        p.append('            bail!("specified version not supported by this message type");')
        p.append("        }")
        for fname, f, rty, coder, dflt, vs in fs:
            c = cond(vs, lo, hi)
            if c is None:
                p.append(f"        let {fname} = {coder}.decode(buf)?;")
            else:
                p.append(f"        let {fname} = if {c} {{ {coder}.decode(buf)? }} else {{ {dflt} }};")
        p.append("        let unknown_tagged_fields = read_tagged_fields(buf)?;")
        p.append("        Ok(Self {")
        for fname, *_ in fs:
            p.append(f"            {fname},")
        p.append("            unknown_tagged_fields,")
        p.append("        })")
        p.append("    }")
        p.append("}")
        p.append("")
        p.append(f"impl Default for {name} {{")
        p.append("    fn default() -> Self {")
        p.append("        Self {")
        for fname, f, rty, coder, dflt, vs in fs:
            p.append(f"            {fname}: {dflt},")
        p.append("            unknown_tagged_fields: BTreeMap::new(),")
        p.append("        }")
        p.append("    }")
        p.append("}")
        p.append("")
        p.append(f"impl Message for {name} {{")
        p.append(f"    const VERSIONS: VersionRange = VersionRange {{ min: {lo}, max: {hi} }};")
        p.append("    const DEPRECATED_VERSIONS: Option<VersionRange> = None;")
        p.append("}")
        p.append("")
        if top and self.spec["type"] in ("request", "response"):
            hv = 2 if self.spec["type"] == "request" else 1
            p.append(f"impl HeaderVersion for {name} {{")
            p.append("    fn header_version(_version: i16) -> i16 {")
            p.append(f"        {hv}")
            p.append("    }")
            p.append("}")
            p.append("")
        return "\n".join(p)

    def body(self, emitted):
        """The structs of this spec not in `emitted` (name -> fields), which it extends."""
        self.collect(self.spec["name"], self.spec["fields"])
        out = []
        for sname, fs in self.structs:
            if sname in emitted:
                if [f[0] for f in emitted[sname]] != [f[0] for f in fs]:
                    raise SystemExit(f"struct {sname} differs between specs")
                continue
            emitted[sname] = fs
            out.append(self.emit_struct(sname, fs, sname == self.spec["name"]))
        return out


def header(names, protocol):
    return "\n".join([
            f"//! {', '.join(names)}",
            "//!",
            f"//! Generated by `vendor/kafka-protocol/extra/gen.py` from Kafka 4.4's specs (the crate's",
            "//! generator predates them). Do not edit by hand: change the generator and run it again.",
            "#![allow(unused)]",
            "#![allow(clippy::all)]",
            "",
            "use std::collections::BTreeMap;",
            "",
            "use anyhow::{bail, Result};",
            "use bytes::Bytes;",
            "use uuid::Uuid;",
            "",
            f"use {protocol}::{{",
            "    buf::{ByteBuf, ByteBufMut},",
            "    types, Decodable, Decoder, Encodable, Encoder, HeaderVersion, Message, StrBytes,",
            "    VersionRange,",
            "};",
            "",
            TAGGED,
        ])


TAGGED = """/// Writes the tagged-field section: only fields this codec does not know, in tag order.
fn write_tagged_fields<B: ByteBufMut>(buf: &mut B, fields: &BTreeMap<i32, Bytes>) -> Result<()> {
    types::UnsignedVarInt.encode(buf, u32::try_from(fields.len())?)?;
    for (tag, value) in fields {
        types::UnsignedVarInt.encode(buf, u32::try_from(*tag)?)?;
        types::UnsignedVarInt.encode(buf, u32::try_from(value.len())?)?;
        buf.put_slice(value);
    }
    Ok(())
}

fn tagged_fields_size(fields: &BTreeMap<i32, Bytes>) -> Result<usize> {
    let mut size = types::UnsignedVarInt.compute_size(u32::try_from(fields.len())?)?;
    for (tag, value) in fields {
        size += types::UnsignedVarInt.compute_size(u32::try_from(*tag)?)?;
        size += types::UnsignedVarInt.compute_size(u32::try_from(value.len())?)?;
        size += value.len();
    }
    Ok(size)
}

fn read_tagged_fields<B: ByteBuf>(buf: &mut B) -> Result<BTreeMap<i32, Bytes>> {
    let mut fields = BTreeMap::new();
    let count: u32 = types::UnsignedVarInt.decode(buf)?;
    for _ in 0..count {
        let tag: u32 = types::UnsignedVarInt.decode(buf)?;
        let size: u32 = types::UnsignedVarInt.decode(buf)?;
        fields.insert(tag as i32, buf.try_get_bytes(size as usize)?);
    }
    Ok(fields)
}
"""


def main():
    protocol, out, srcs = sys.argv[1], sys.argv[2], sys.argv[3:]
    specs = []
    for src in srcs:
        text = "\n".join(l for l in open(src) if not re.match(r"^\s*//", l))
        specs.append(json.loads(text))
    parts = [header([s["name"] for s in specs], protocol)]
    emitted = {}
    for spec in specs:
        parts.extend(Gen(spec, protocol).body(emitted))
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
