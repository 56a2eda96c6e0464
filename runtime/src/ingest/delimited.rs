//! CSV and the other delimited formats.

use std::io::Read;

use datafusion::arrow::record_batch::RecordBatch;
use kustodian_planner::types::KqlSchema;

use super::builder::BatchBuilder;
use crate::error::{Result, RuntimeError};

const READ_BUFFER: usize = 1 << 20;

pub(super) fn read_delimited<R: Read>(
    reader: R,
    schema: &KqlSchema,
    delimiter: u8,
    ignore_first_record: bool,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<u64> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .double_quote(true)
        .buffer_capacity(READ_BUFFER)
        .from_reader(reader);
    let mut builder = BatchBuilder::new(schema);
    let mut record = csv::ByteRecord::new();
    let mut first = true;
    let mut total: u64 = 0;
    loop {
        let more = rdr.read_byte_record(&mut record).map_err(|e| {
            let at = e.position().map(|p| format!(" at line {}", p.line())).unwrap_or_default();
            match e.into_kind() {
                csv::ErrorKind::Io(io) => RuntimeError::Io(io),
                kind => RuntimeError::bad_request(format!("malformed delimited data{at}: {kind:?}")),
            }
        })?;
        if !more {
            break;
        }
        let is_first = first;
        first = false;
        if is_first && ignore_first_record {
            continue;
        }
        for (i, col) in builder.columns.iter_mut().enumerate() {
            match record.get(i) {
                Some(mut field) => {
                    if is_first && i == 0 {
                        field = field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field);
                    }
                    match std::str::from_utf8(field) {
                        Ok(s) => col.append_text(s),
                        Err(_) => col.append_text(&String::from_utf8_lossy(field)),
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
    }
    if let Some(batch) = builder.flush()? {
        sink(batch)?;
    }
    Ok(total)
}
