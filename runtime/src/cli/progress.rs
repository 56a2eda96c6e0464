//! The progress bar of `.ingest`: drawn on stderr from the library's progress events, for files
//! large enough to be worth watching (hidden when stderr is not a terminal).

use std::path::Path;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kustodian_runtime::ingest::{Progress, ProgressEvent, ProgressUnit};

/// Files larger than this get a bar; smaller ones are read before a bar would be seen.
pub const PROGRESS_THRESHOLD_BYTES: u64 = 8 * 1024 * 1024;

/// A callback that draws one bar per large file: bytes for text formats, rows for Parquet.
pub fn bar() -> Progress {
    let bars = Bars::default();
    Progress::new(move |event| bars.on(event))
}

/// The bar of the file being read, if it is large enough to have one.
#[derive(Default)]
struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn on(&self, event: ProgressEvent<'_>) {
        // A poisoned lock only means a bar was lost; the ingestion goes on without one.
        let Ok(mut current) = self.current.lock() else { return };
        match event {
            ProgressEvent::Started { source, size, unit, total } => {
                if let Some(old) = current.take() {
                    old.finish_and_clear();
                }
                if size > PROGRESS_THRESHOLD_BYTES {
                    *current = Some(new_bar(source, unit, total));
                }
            }
            ProgressEvent::Advanced { done, .. } => {
                if let Some(b) = current.as_ref() {
                    b.set_position(done);
                }
            }
            ProgressEvent::Finished { .. } => {
                if let Some(b) = current.take() {
                    b.finish_and_clear();
                }
            }
        }
    }
}

fn new_bar(source: &Path, unit: ProgressUnit, total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = match unit {
        ProgressUnit::Bytes => "{msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        ProgressUnit::Rows => "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} rows ({per_sec}, eta {eta})",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    bar.set_message(format!("ingesting {name}"));
    bar
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn position(bars: &Bars) -> Option<(u64, Option<u64>)> {
        bars.current.lock().unwrap().as_ref().map(|b| (b.position(), b.length()))
    }

    #[test]
    fn a_bar_for_large_files_only() {
        let bars = Bars::default();
        let source = Path::new("/data/big.csv");
        let big = PROGRESS_THRESHOLD_BYTES + 1;
        bars.on(ProgressEvent::Started { source, size: 10, unit: ProgressUnit::Bytes, total: 10 });
        bars.on(ProgressEvent::Advanced { source, done: 10 });
        assert_eq!(position(&bars), None, "a small file has no bar");
        bars.on(ProgressEvent::Finished { source });
        bars.on(ProgressEvent::Started { source, size: big, unit: ProgressUnit::Bytes, total: big });
        bars.on(ProgressEvent::Advanced { source, done: 4096 });
        assert_eq!(position(&bars), Some((4096, Some(big))));
        bars.on(ProgressEvent::Finished { source });
        assert_eq!(position(&bars), None, "the bar is cleared");
        bars.on(ProgressEvent::Started { source, size: big, unit: ProgressUnit::Rows, total: 70_000 });
        bars.on(ProgressEvent::Advanced { source, done: 65_536 });
        assert_eq!(position(&bars), Some((65_536, Some(70_000))), "Parquet counts rows");
    }
}
