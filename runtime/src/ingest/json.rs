//! JSON records: JSON lines / concatenated objects, or one top-level array, streamed.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};

use datafusion::arrow::record_batch::RecordBatch;
use kustodian_planner::types::KqlSchema;
use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde::Deserializer as _;
use serde_json::value::RawValue;

use super::builder::BatchBuilder;
use crate::error::{Result, RuntimeError};

struct State<'a> {
    builder: BatchBuilder,
    names: Vec<String>,
    sink: &'a mut dyn FnMut(RecordBatch) -> Result<()>,
    total: u64,
    /// An error raised inside the serde callbacks, reported instead of serde's wrapper.
    error: Option<RuntimeError>,
}

impl State<'_> {
    fn record(&mut self, raw: &RawValue) -> Result<()> {
        let text = raw.get();
        if !text.starts_with('{') {
            return Err(RuntimeError::bad_request(format!(
                "JSON record {} is not an object: {}",
                self.total + 1,
                truncate(text)
            )));
        }
        let map: HashMap<String, &RawValue> = serde_json::from_str(text)
            .map_err(|e| RuntimeError::bad_request(format!("JSON record {}: {e}", self.total + 1)))?;
        for (col, name) in self.builder.columns.iter_mut().zip(&self.names) {
            match map.get(name.as_str()) {
                Some(v) => col.append_json(v.get()),
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
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let first = skip_bom_and_whitespace(&mut reader)?;
    let mut state = State {
        builder: BatchBuilder::new(schema),
        names: schema.columns.iter().map(|c| c.name.clone()).collect(),
        sink,
        total: 0,
        error: None,
    };
    if first == Some(b'[') {
        let mut de = serde_json::Deserializer::from_reader(&mut reader);
        let result = (&mut de).deserialize_seq(ArrayVisitor { state: &mut state });
        if let Some(e) = state.error.take() {
            return Err(e);
        }
        result.map_err(|e| RuntimeError::bad_request(format!("malformed JSON: {e}")))?;
        de.end().map_err(|e| RuntimeError::bad_request(format!("malformed JSON after the top-level array: {e}")))?;
    } else {
        let stream = serde_json::Deserializer::from_reader(&mut reader).into_iter::<Box<RawValue>>();
        for item in stream {
            let raw = item.map_err(|e| RuntimeError::bad_request(format!("malformed JSON: {e}")))?;
            state.record(&raw)?;
        }
    }
    if let Some(batch) = state.builder.flush()? {
        (state.sink)(batch)?;
    }
    Ok(state.total)
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
