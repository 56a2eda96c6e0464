//! CSV and the other delimited formats, read as Kusto reads them.
//!
//! The reader is ours rather than the `csv` crate's because Kusto refuses what that crate
//! accepts silently: a quoted field still open at the end of the data (the crate ends it
//! there, swallowing the rest of the file into one field) and records whose number of fields
//! varies. Rules (RFC 4180, as Kusto applies them):
//! - Records end at LF, CRLF or CR; empty lines are skipped (a line of spaces is a record).
//! - A field that starts with `"` is quoted: it may hold delimiters and line breaks, `""` is
//!   a quote, and it must be closed (else `Stream_ClosingQuoteMissing`). Text after the
//!   closing quote is kept, and a `"` inside an unquoted field is an ordinary character.
//! - A leading UTF-8 BOM is skipped; every field must be UTF-8.
//! - Under the default validation policy every record has as many fields as the first
//!   (`Stream_WrongNumberOfFields` otherwise), the record skipped by `ignoreFirstRecord`
//!   included: it is a record of the same stream.

use std::io::{BufRead, BufReader, Read};

use datafusion::arrow::record_batch::RecordBatch;
use kustodian_planner::types::KqlSchema;

use super::builder::BatchBuilder;
use super::errors::IngestErrorCode;
use super::summary::IngestSummary;
use super::{ValidationImplications, ValidationOptions, ValidationPolicy};
use crate::error::{Result, RuntimeError};

const READ_BUFFER: usize = 1 << 20;
const BOM: &[u8] = b"\xEF\xBB\xBF";

pub(super) struct DelimitedOptions {
    pub delimiter: u8,
    pub ignore_first_record: bool,
    pub validation: ValidationPolicy,
}

/// One record: its fields' bytes end to end, where each field ends, where it starts.
struct Record<'a> {
    bytes: &'a [u8],
    ends: &'a [usize],
    /// 1-based number among the records of the stream (blank lines are not records).
    number: u64,
    /// 1-based line of its first byte.
    line: u64,
}

impl Record<'_> {
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Where field `i` starts and ends in `bytes`.
    fn span(&self, i: usize) -> Option<(usize, usize)> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some((start, end))
    }

    fn field(&self, i: usize) -> Option<&[u8]> {
        let (start, end) = self.span(i)?;
        self.bytes.get(start..end)
    }
}

/// The error for a record that is not UTF-8, naming its first field that is not.
fn not_utf8(r: &Record) -> RuntimeError {
    for i in 0..r.len() {
        let field = r.field(i).unwrap_or_default();
        if let Err(e) = std::str::from_utf8(field) {
            let at = e.valid_up_to();
            return IngestErrorCode::UnexpectedCharacterInInputStream.error(format!(
                "record {} (line {}), field {}: the byte 0x{:02X} at offset {at} of the field is not UTF-8; delimited data must be UTF-8 encoded",
                r.number,
                r.line,
                i + 1,
                field.get(at).copied().unwrap_or(0),
            ));
        }
    }
    IngestErrorCode::UnexpectedCharacterInInputStream
        .error(format!("record {} (line {}) is not UTF-8; delimited data must be UTF-8 encoded", r.number, r.line))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between records (blank lines are skipped here).
    RecordStart,
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` read inside a quoted field: the closing quote, or the first of `""`.
    QuoteInQuoted,
}

struct Parser {
    delimiter: u8,
    state: State,
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// 1-based line of the next byte (counted by LF, so CRLF and LF files agree).
    line: u64,
    record_line: u64,
    records: u64,
}

impl Parser {
    fn new(delimiter: u8) -> Parser {
        Parser {
            delimiter,
            state: State::RecordStart,
            bytes: Vec::with_capacity(4096),
            ends: Vec::with_capacity(64),
            line: 1,
            record_line: 1,
            records: 0,
        }
    }

    fn end_field(&mut self) {
        self.ends.push(self.bytes.len());
    }

    fn end_record(&mut self, on_record: &mut dyn FnMut(&Record) -> Result<()>) -> Result<()> {
        self.end_field();
        self.records += 1;
        let record = Record { bytes: &self.bytes, ends: &self.ends, number: self.records, line: self.record_line };
        let result = on_record(&record);
        self.bytes.clear();
        self.ends.clear();
        self.state = State::RecordStart;
        result
    }

    /// Reads a chunk of the stream, calling `on_record` for each record it completes.
    fn feed(&mut self, chunk: &[u8], on_record: &mut dyn FnMut(&Record) -> Result<()>) -> Result<()> {
        let d = self.delimiter;
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            match self.state {
                State::RecordStart => {
                    if b == b'\n' || b == b'\r' {
                        if b == b'\n' {
                            self.line += 1;
                        }
                        i += 1;
                    } else {
                        self.record_line = self.line;
                        self.state = State::FieldStart;
                    }
                }
                State::FieldStart => {
                    if b == b'"' {
                        self.state = State::Quoted;
                        i += 1;
                    } else if b == d {
                        self.end_field();
                        i += 1;
                    } else if b == b'\n' || b == b'\r' {
                        self.end_record(on_record)?;
                        // The terminator is read again at RecordStart, which counts the line.
                    } else {
                        self.state = State::Unquoted;
                    }
                }
                State::Unquoted => {
                    let rest = &chunk[i..];
                    let n = rest.iter().position(|&c| c == d || c == b'\n' || c == b'\r').unwrap_or(rest.len());
                    self.bytes.extend_from_slice(&rest[..n]);
                    i += n;
                    if let Some(&c) = chunk.get(i) {
                        if c == d {
                            self.end_field();
                            self.state = State::FieldStart;
                            i += 1;
                        } else {
                            self.end_record(on_record)?;
                        }
                    }
                }
                State::Quoted => {
                    let rest = &chunk[i..];
                    let n = rest.iter().position(|&c| c == b'"' || c == b'\n').unwrap_or(rest.len());
                    self.bytes.extend_from_slice(&rest[..n]);
                    i += n;
                    if let Some(&c) = chunk.get(i) {
                        if c == b'"' {
                            self.state = State::QuoteInQuoted;
                        } else {
                            self.line += 1;
                            self.bytes.push(c);
                        }
                        i += 1;
                    }
                }
                State::QuoteInQuoted => {
                    if b == b'"' {
                        self.bytes.push(b'"');
                        self.state = State::Quoted;
                        i += 1;
                    } else if b == d {
                        self.end_field();
                        self.state = State::FieldStart;
                        i += 1;
                    } else if b == b'\n' || b == b'\r' {
                        self.end_record(on_record)?;
                    } else {
                        // `"ab"cd`: Kusto, like most CSV readers, keeps the text after the
                        // closing quote as part of the field.
                        self.state = State::Unquoted;
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the stream: completes the last record, or fails on an open quoted field.
    fn finish(&mut self, on_record: &mut dyn FnMut(&Record) -> Result<()>) -> Result<()> {
        match self.state {
            State::RecordStart => Ok(()),
            State::Quoted => Err(IngestErrorCode::ClosingQuoteMissing.error(format!(
                "record {} (line {}) has a quoted field with no closing quote: field {} opens a quote that is still open at the end of the data",
                self.records + 1,
                self.record_line,
                self.ends.len() + 1
            ))),
            State::FieldStart | State::Unquoted | State::QuoteInQuoted => self.end_record(on_record),
        }
    }
}

/// Reads the first bytes of `reader` into `head` and drops a UTF-8 BOM from them.
fn read_head<R: Read>(reader: &mut R, head: &mut Vec<u8>) -> Result<()> {
    let mut buf = [0u8; 3];
    let mut n = 0;
    while n < buf.len() {
        let k = reader.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let got = &buf[..n];
    head.extend_from_slice(got.strip_prefix(BOM).unwrap_or(got));
    Ok(())
}

pub(super) fn read_delimited<R: Read>(
    mut reader: R,
    schema: &KqlSchema,
    opts: &DelimitedOptions,
    summary: &mut IngestSummary,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<u64> {
    let mut head = Vec::with_capacity(3);
    read_head(&mut reader, &mut head)?;
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let mut parser = Parser::new(opts.delimiter);
    let mut builder = BatchBuilder::new(schema);
    let mut expected: Option<usize> = None;
    let mut total: u64 = 0;
    let validate = opts.validation.options == ValidationOptions::ValidateCsvInputConstantColumns;
    // The closure borrows the builder and the counters; they are read again after it.
    {
        let mut on_record = |r: &Record| -> Result<()> {
            if validate {
                match expected {
                    None => expected = Some(r.len()),
                    Some(e) if e != r.len() => match opts.validation.implications {
                        ValidationImplications::Fail => {
                            return Err(IngestErrorCode::WrongNumberOfFields.error(format!(
                                "record {} (line {}) has {} field{} where the first record has {e}; every record must have the same number of fields (ValidationOptions: ValidateCsvInputConstantColumns)",
                                r.number,
                                r.line,
                                r.len(),
                                if r.len() == 1 { "" } else { "s" },
                            )));
                        }
                        ValidationImplications::BestEffort => summary.malformed(r.number, r.line, r.len(), e),
                    },
                    Some(_) => {}
                }
            }
            // Every field must be UTF-8, those the table has no column for included: the whole
            // stream is text in one encoding. The record is checked at once; a field boundary
            // inside a character (`\xC3,\xA9`) makes two invalid fields of a valid whole.
            let text = match std::str::from_utf8(r.bytes) {
                Ok(t) if r.ends.iter().all(|&e| t.is_char_boundary(e)) => t,
                _ => return Err(not_utf8(r)),
            };
            if r.number == 1 && opts.ignore_first_record {
                return Ok(());
            }
            for (i, (col, meta)) in builder.columns.iter_mut().zip(&schema.columns).enumerate() {
                match r.span(i).and_then(|(start, end)| text.get(start..end)) {
                    Some(s) => {
                        if !col.append_text(s) {
                            summary.conversion_failure(r.number, Some(r.line), meta, s);
                        }
                    }
                    None => col.append_null(),
                }
            }
            total += 1;
            if builder.end_row()
                && let Some(batch) = builder.flush()?
            {
                sink(batch)?;
            }
            Ok(())
        };
        parser.feed(&head, &mut on_record)?;
        loop {
            let chunk = reader.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len();
            parser.feed(chunk, &mut on_record)?;
            reader.consume(n);
        }
        parser.finish(&mut on_record)?;
    }
    if let Some(batch) = builder.flush()? {
        sink(batch)?;
    }
    Ok(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn records(text: &[u8], chunk: usize) -> Result<Vec<(u64, Vec<String>)>> {
        let mut out = Vec::new();
        let mut p = Parser::new(b',');
        let mut on = |r: &Record| -> Result<()> {
            let fields = (0..r.len()).map(|i| String::from_utf8_lossy(r.field(i).unwrap()).into_owned()).collect();
            out.push((r.line, fields));
            Ok(())
        };
        for c in text.chunks(chunk.max(1)) {
            p.feed(c, &mut on)?;
        }
        p.finish(&mut on)?;
        Ok(out)
    }

    #[test]
    fn records_lines_and_quotes_in_any_chunking() {
        let text = b"a,\"b,\"\"c\"\"\"\r\n\r\n\"x\ny\",z\nlast,\"q\"tail\n,\n";
        for chunk in [1, 2, 3, 7, 1000] {
            let got = records(text, chunk).unwrap();
            let want: Vec<(u64, Vec<String>)> = vec![
                (1, vec!["a".into(), "b,\"c\"".into()]),
                (3, vec!["x\ny".into(), "z".into()]),
                (5, vec!["last".into(), "qtail".into()]),
                (6, vec![String::new(), String::new()]),
            ];
            assert_eq!(got, want, "chunk {chunk}");
        }
    }

    #[test]
    fn a_quote_open_at_the_end_fails() {
        for chunk in [1, 4, 1000] {
            let e = records(b"a,b\nc,\"d\ne,f\n", chunk).unwrap_err().to_string();
            assert!(e.starts_with("Stream_ClosingQuoteMissing: record 2 (line 2)"), "{e}");
        }
        // A closed quote as the very last byte is fine; so is a quote inside an unquoted field.
        assert_eq!(records(b"a,\"b\"", 2).unwrap(), vec![(1, vec!["a".into(), "b".into()])]);
        assert_eq!(records(b"a\"b,c", 2).unwrap(), vec![(1, vec!["a\"b".into(), "c".into()])]);
    }
}
