//! JSON records: JSON lines / concatenated objects, or one top-level array, streamed.
//!
//! Malformed JSON (junk after the records, a truncated record, a record that is not an object)
//! fails the ingestion with `BadRequest_InvalidBlob`, as Kusto does for `multijson`; bytes
//! that are not UTF-8 fail it with the code of [`IngestErrorCode::UnexpectedCharacterInInputStream`].

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use datafusion::arrow::record_batch::RecordBatch;
use kustodian_planner::types::KqlSchema;
use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde::Deserializer as _;
use serde_json::value::RawValue;

use super::builder::BatchBuilder;
use super::errors::IngestErrorCode;
use super::summary::IngestSummary;
use crate::error::{Result, RuntimeError};

struct State<'a> {
    builder: BatchBuilder,
    schema: &'a KqlSchema,
    summary: &'a mut IngestSummary,
    sink: &'a mut dyn FnMut(RecordBatch) -> Result<()>,
    total: u64,
    /// An error raised inside the serde callbacks, reported instead of serde's wrapper.
    error: Option<RuntimeError>,
}

impl State<'_> {
    fn record(&mut self, raw: &RawValue) -> Result<()> {
        let text = raw.get();
        let number = self.total + 1;
        if !text.starts_with('{') {
            return Err(IngestErrorCode::InvalidBlob.error(format!(
                "JSON record {number} is not an object: {}",
                truncate(text)
            )));
        }
        let map: HashMap<String, &RawValue> = serde_json::from_str(text)
            .map_err(|e| IngestErrorCode::InvalidBlob.error(format!("JSON record {number}: {e}")))?;
        for (col, meta) in self.builder.columns.iter_mut().zip(&self.schema.columns) {
            match map.get(meta.name.as_str()) {
                Some(v) => {
                    if !col.append_json(v.get()) {
                        self.summary.conversion_failure(number, None, meta, v.get());
                    }
                }
                None => col.append_null(),
            }
        }
        self.total += 1;
        if self.builder.end_row()
            && let Some(batch) = self.builder.flush()?
        {
            (self.sink)(batch)?;
        }
        Ok(())
    }
}

fn truncate(s: &str) -> String {
    let mut t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        t.push_str("...");
    }
    t
}

pub(super) fn read_json<R: Read>(
    reader: R,
    schema: &KqlSchema,
    summary: &mut IngestSummary,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<u64> {
    let bad_utf8 = Rc::new(Cell::new(None));
    let mut reader = BufReader::with_capacity(1 << 20, Utf8Checked::new(reader, bad_utf8.clone()));
    let first = skip_bom_and_whitespace(&mut reader).map_err(|e| utf8_or(e, &bad_utf8))?;
    let mut state = State { builder: BatchBuilder::new(schema), schema, summary, sink, total: 0, error: None };
    if first == Some(b'[') {
        let mut de = serde_json::Deserializer::from_reader(&mut reader);
        let result = (&mut de).deserialize_seq(ArrayVisitor { state: &mut state });
        if let Some(e) = state.error.take() {
            return Err(e);
        }
        result.map_err(|e| malformed(&e, "", &bad_utf8))?;
        de.end().map_err(|e| malformed(&e, " after the top-level array", &bad_utf8))?;
    } else {
        let stream = serde_json::Deserializer::from_reader(&mut reader).into_iter::<Box<RawValue>>();
        for item in stream {
            let raw = item.map_err(|e| malformed(&e, "", &bad_utf8))?;
            state.record(&raw)?;
        }
    }
    if let Some(batch) = state.builder.flush()? {
        (state.sink)(batch)?;
    }
    Ok(state.total)
}

/// A JSON syntax error, or the UTF-8 error behind it.
fn malformed(e: &serde_json::Error, place: &str, bad_utf8: &Cell<Option<u64>>) -> RuntimeError {
    utf8_or(IngestErrorCode::InvalidBlob.error(format!("malformed JSON{place}: {e}")), bad_utf8)
}

/// `error`, unless the stream held bytes that are not UTF-8: then that is the error (serde
/// reports it as a syntax or I/O error at the place it stopped).
fn utf8_or(error: RuntimeError, bad_utf8: &Cell<Option<u64>>) -> RuntimeError {
    match bad_utf8.get() {
        Some(offset) => IngestErrorCode::UnexpectedCharacterInInputStream
            .error(format!("the byte at offset {offset} is not UTF-8; JSON data must be UTF-8 encoded")),
        None => error,
    }
}

/// A reader that checks that what passes through is UTF-8, and on the first invalid byte
/// records its offset and fails the read.
struct Utf8Checked<R> {
    inner: R,
    /// The bytes of a character split by the end of the last read (at most 3).
    carry: Vec<u8>,
    scratch: Vec<u8>,
    /// Offset of the first byte of the next read.
    offset: u64,
    bad: Rc<Cell<Option<u64>>>,
}

impl<R: Read> Utf8Checked<R> {
    fn new(inner: R, bad: Rc<Cell<Option<u64>>>) -> Self {
        Utf8Checked { inner, carry: Vec::with_capacity(4), scratch: Vec::new(), offset: 0, bad }
    }

    fn fail(&self, offset: u64) -> io::Error {
        self.bad.set(Some(offset));
        io::Error::new(io::ErrorKind::InvalidData, format!("the byte at offset {offset} is not UTF-8"))
    }
}

impl<R: Read> Read for Utf8Checked<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        let start = self.offset - self.carry.len() as u64;
        if n == 0 {
            // A character cut by the end of the data.
            return if self.carry.is_empty() { Ok(0) } else { Err(self.fail(start)) };
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.carry);
        self.scratch.extend_from_slice(&out[..n]);
        match std::str::from_utf8(&self.scratch) {
            Ok(_) => self.carry.clear(),
            Err(e) => {
                let valid = e.valid_up_to();
                if e.error_len().is_some() {
                    return Err(self.fail(start + valid as u64));
                }
                self.carry = self.scratch[valid..].to_vec();
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

fn skip_bom_and_whitespace<R: BufRead>(reader: &mut R) -> Result<Option<u8>> {
    let buf = reader.fill_buf()?;
    if buf.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    loop {
        let buf = reader.fill_buf()?;
        let Some(&b) = buf.first() else { return Ok(None) };
        if b.is_ascii_whitespace() {
            reader.consume(1);
        } else {
            return Ok(Some(b));
        }
    }
}

struct ArrayVisitor<'s, 'a> {
    state: &'s mut State<'a>,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of JSON objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(raw) = seq.next_element_seed(RawSeed)? {
            if let Err(e) = self.state.record(&raw) {
                let msg = e.to_string();
                self.state.error = Some(e);
                return Err(A::Error::custom(msg));
            }
        }
        Ok(())
    }
}

struct RawSeed;

impl<'de> DeserializeSeed<'de> for RawSeed {
    type Value = Box<RawValue>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Box<RawValue>, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}
