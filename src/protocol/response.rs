//! Response frames in pieces, so that Fetch's record bytes go from the segment file to the socket
//! without passing through gregor's memory (sendfile, as Kafka's FileRecords.writeTo does).
//!
//! kafka-protocol encodes a whole message into one buffer. To keep its encoders (every version
//! of every field) and still not copy records, a Fetch response is encoded into a
//! `SplicingBuf`: each partition's `records` field holds a placeholder of the right length, and
//! when the encoder writes that placeholder's bytes (always one `put_slice` of exactly that
//! slice) the buffer ends the current piece and puts the file range in its place. The length
//! prefixes the encoder wrote before it are therefore exactly right. Placeholders are matched in
//! encoding order and by address, and a response in which any placeholder was not met is an
//! encoding error rather than a frame with placeholder bytes in it.
//!
//! `SplicingBuf` must implement `bytes::BufMut`, an `unsafe` trait; its implementation only
//! forwards to the `BytesMut` inside (see the SAFETY notes), which is why this module alone may
//! use `unsafe`.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::sync::OnceLock;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

use crate::log::segment::FileRange;

/// Largest records field sent from a file; larger ones (beyond any default fetch size) are read
/// into memory.
const PLACEHOLDER_LEN: usize = 64 << 20;

/// The placeholder: zeroed memory that is never read or written, so it costs address space but
/// no resident memory. Allocated once at run time (a zeroed allocation this large is fresh
/// zero pages from the kernel, never touched) rather than as a `static` array, which the
/// compiler stores in the binary's read-only data: 64 MiB of zeros in every copy of gregor.
fn placeholder() -> &'static [u8] {
    static PLACEHOLDER: OnceLock<&'static [u8]> = OnceLock::new();
    PLACEHOLDER.get_or_init(|| Box::leak(vec![0u8; PLACEHOLDER_LEN].into_boxed_slice()))
}

/// One piece of a response frame.
#[derive(Clone)]
pub enum Chunk {
    Mem(Bytes),
    File(FileRange),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Mem(b) => b.len(),
            Chunk::File(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `src` is the bytes this chunk stands in for.
    fn stands_for(&self, src: &[u8]) -> bool {
        let (addr, len) = match self {
            Chunk::Mem(b) => (b.as_ptr(), b.len()),
            Chunk::File(r) => (placeholder().as_ptr(), r.len()),
        };
        !src.is_empty() && std::ptr::eq(src.as_ptr(), addr) && src.len() == len
    }
}

/// A response frame, size prefix included, in the order its pieces go to the socket.
pub struct ResponseFrame {
    chunks: Vec<Chunk>,
    len: usize,
}

impl std::fmt::Debug for ResponseFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFrame")
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl ResponseFrame {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn into_chunks(self) -> Vec<Chunk> {
        self.chunks
    }

    /// `payload` behind a size prefix, without a response header: a SASL token after a v0
    /// SaslHandshake (Kafka's raw SASL framing).
    pub fn size_prefixed(payload: &[u8]) -> ResponseFrame {
        let mut out = BytesMut::with_capacity(payload.len() + 4);
        out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        out.extend_from_slice(payload);
        ResponseFrame {
            len: out.len(),
            chunks: vec![Chunk::Mem(out.freeze())],
        }
    }

    /// The whole frame in memory (tests and fuzzing).
    pub fn to_bytes(&self) -> io::Result<Bytes> {
        let mut out = BytesMut::with_capacity(self.len);
        for c in &self.chunks {
            match c {
                Chunk::Mem(b) => out.extend_from_slice(b),
                Chunk::File(r) => out.extend_from_slice(&r.read()?),
            }
        }
        Ok(out.freeze())
    }
}

/// The records fields of one response that are spliced in rather than copied, in encoding order.
#[derive(Default)]
pub struct Splices(VecDeque<Chunk>);

impl Splices {
    /// The value to put into the records field for `range`: a placeholder when its bytes can be
    /// sent from the file, else the bytes themselves (read once, then spliced without a copy).
    pub fn add(&mut self, range: FileRange) -> io::Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        if range.fd().is_some() && range.len() <= PLACEHOLDER_LEN {
            let placeholder = Bytes::from_static(&placeholder()[..range.len()]);
            self.0.push_back(Chunk::File(range));
            return Ok(placeholder);
        }
        let bytes = range.read()?;
        self.0.push_back(Chunk::Mem(bytes.clone()));
        Ok(bytes)
    }

    fn spliced_len(&self) -> usize {
        self.0.iter().map(Chunk::len).sum()
    }
}

/// The buffer a response is encoded into; see the module comment.
pub struct SplicingBuf {
    cur: BytesMut,
    /// The first piece stays mutable until `finish` writes the frame's size prefix into it.
    first: Option<BytesMut>,
    chunks: Vec<Chunk>,
    /// Bytes in `first` and `chunks`.
    done: usize,
    pending: Splices,
}

impl SplicingBuf {
    /// `capacity`: the encoded size of the frame, records included.
    pub fn new(capacity: usize, splices: Splices) -> SplicingBuf {
        let in_memory = capacity.saturating_sub(splices.spliced_len());
        SplicingBuf {
            cur: BytesMut::with_capacity(in_memory),
            first: None,
            chunks: Vec::new(),
            done: 0,
            pending: splices,
        }
    }

    fn end_piece(&mut self) {
        if self.cur.is_empty() {
            return;
        }
        let piece = self.cur.split();
        self.done += piece.len();
        match self.first {
            None if self.chunks.is_empty() => self.first = Some(piece),
            _ => self.chunks.push(Chunk::Mem(piece.freeze())),
        }
    }

    /// The frame, with its first four bytes set to the size of the rest; an error if a
    /// placeholder was never written (the encoder did not write records the way we rely on).
    pub fn finish(mut self) -> Result<ResponseFrame, String> {
        if !self.pending.0.is_empty() {
            return Err(format!(
                "{} records field(s) were not spliced",
                self.pending.0.len()
            ));
        }
        self.end_piece();
        let len = self.done;
        let mut first = self.first.take().unwrap_or_default();
        if first.len() < 4 {
            return Err("response frame without a size prefix".into());
        }
        let size = i32::try_from(len - 4).map_err(|_| format!("response of {len} bytes"))?;
        first[..4].copy_from_slice(&size.to_be_bytes());
        let mut chunks = Vec::with_capacity(self.chunks.len() + 1);
        chunks.push(Chunk::Mem(first.freeze()));
        chunks.append(&mut self.chunks);
        Ok(ResponseFrame { chunks, len })
    }
}

// SAFETY: every method forwards to the `BytesMut` being filled, which upholds `BufMut`'s contract
// (`chunk_mut` and `advance_mut` refer to the same buffer, and `put_slice` only appends).
unsafe impl BufMut for SplicingBuf {
    fn remaining_mut(&self) -> usize {
        self.cur.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `cur.chunk_mut()`, as `BufMut` requires.
        unsafe { self.cur.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.cur.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if self.pending.0.front().is_some_and(|c| c.stands_for(src)) {
            self.end_piece();
            if let Some(chunk) = self.pending.0.pop_front() {
                self.done += chunk.len();
                self.chunks.push(chunk);
            }
            return;
        }
        self.cur.extend_from_slice(src);
    }
}

impl ByteBufMut for SplicingBuf {
    fn offset(&self) -> usize {
        self.done + self.cur.len()
    }

    // Gaps (length and CRC fields filled in later) are used by the record batch encoder, never by
    // message encoders, so they only ever address the current piece.
    fn seek(&mut self, offset: usize) {
        self.cur.resize(offset.saturating_sub(self.done), 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let (start, end) = (
            r.start.saturating_sub(self.done),
            r.end.saturating_sub(self.done),
        );
        self.cur.get_mut(start..end).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::make_batch;
    use crate::log::batch::{assign_offsets, BatchHeader, HEADER_LEN};
    use crate::log::segment::Segment;
    use crate::log::storage::FileStorage;
    use crate::protocol::{encode, Reply};
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn segment(dir: &std::path::Path, batches: usize) -> Segment {
        let mut seg = Segment::create(&FileStorage::shared(), dir, 0).unwrap();
        for i in 0..batches {
            let b = make_batch(&[b"value-1", b"value-2"], 1000 + i as i64, None);
            let h = assign_offsets(&b, 2 * i as i64, 0, None);
            let parsed = BatchHeader::parse(&h).unwrap();
            seg.append(&h, &b[HEADER_LEN..], &parsed, 100, 0).unwrap();
        }
        seg
    }

    fn response(records: &[Bytes]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(10)
                    .with_records(Some(r.clone()))
            })
            .collect();
        let topic = FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(partitions);
        FetchResponse::default().with_responses(vec![topic])
    }

    fn frame(reply: Reply) -> ResponseFrame {
        match reply {
            Reply::Frame(f) => f,
            other => panic!("not a frame: {other:?}"),
        }
    }

    /// The spliced frame is byte for byte the frame kafka-protocol encodes with the records in
    /// memory, at every Fetch version (non-flexible and flexible length prefixes), and the file
    /// ranges really are sent from the file.
    #[test]
    fn spliced_fetch_equals_plain_encoding_at_every_version() {
        let dir = tempfile::tempdir().unwrap();
        let seg = segment(dir.path(), 20);
        let reader = seg.reader();
        let ranges = [
            reader.range(0, 300, true).unwrap(),
            reader.range(0, 0, false).unwrap(),
            reader.range(200, usize::MAX, true).unwrap(),
        ];
        let in_memory: Vec<Bytes> = ranges.iter().map(|r| r.read().unwrap()).collect();
        for version in 4..=17 {
            let mut splices = Splices::default();
            let placeholders: Vec<Bytes> = ranges
                .iter()
                .map(|r| splices.add(r.clone()).unwrap())
                .collect();
            let spliced = frame(encode(7, 1, version, &response(&placeholders), splices));
            assert_eq!(
                spliced
                    .chunks
                    .iter()
                    .filter(|c| matches!(c, Chunk::File(_)))
                    .count(),
                2,
                "the two non-empty ranges are sent from the file"
            );
            let plain = frame(encode(
                7,
                1,
                version,
                &response(&in_memory),
                Splices::default(),
            ));
            assert_eq!(plain.chunks.len(), 1);
            let (a, b) = (spliced.to_bytes().unwrap(), plain.to_bytes().unwrap());
            assert_eq!(a, b, "v{version}");
            assert_eq!(spliced.len(), a.len());
            assert_eq!(
                i32::from_be_bytes([a[0], a[1], a[2], a[3]]) as usize,
                a.len() - 4
            );
        }
    }

    /// A placeholder the encoder never wrote (here: the response holds other bytes) fails the
    /// encoding instead of sending a frame that does not match its length prefixes.
    #[test]
    fn unspliced_placeholder_is_an_encoding_error() {
        let dir = tempfile::tempdir().unwrap();
        let seg = segment(dir.path(), 3);
        let mut splices = Splices::default();
        let placeholder = splices
            .add(seg.reader().range(0, 1000, true).unwrap())
            .unwrap();
        let other = Bytes::copy_from_slice(&placeholder);
        assert!(matches!(
            encode(1, 1, 12, &response(&[other]), splices),
            Reply::Close(_)
        ));
    }
}
