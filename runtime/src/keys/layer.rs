//! Double encryption (Azure's infrastructure encryption): a second layer under the Parquet
//! layer, with a different key and cipher. Each extent file is encrypted as a whole with
//! ChaCha20 under a second 256-bit key of its own (the "infrastructure key", always wrapped by
//! the platform key, whatever the customer key), below Parquet's AES-GCM under the extent's DEK.
//! ChaCha20 is a seekable stream cipher: any range of a file is read and decrypted alone, so
//! scans still read only the footer, the row groups and pages they need. Integrity comes from
//! the AES-GCM layer above it (a flipped byte fails its tag).
//!
//! Readers: [`LayerFile`] (a Parquet `ChunkReader` over a file, for whole-extent reads and
//! footer checks) and [`LayerStore`] (an `ObjectStore` over the cluster directory, for
//! DataFusion's scans). The key is unique to its file, so the nonce is constant.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path as StorePath;
use datafusion::object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions,
    PutPayload, PutResult,
};
use datafusion::parquet::file::reader::{ChunkReader, Length};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::Keyring;

const NONCE: [u8; 12] = [0; 12];

/// The layer's cipher for one file.
#[derive(Clone)]
pub struct LayerKey([u8; 32]);

impl LayerKey {
    pub fn new(key: &[u8]) -> Option<LayerKey> {
        key.try_into().ok().map(LayerKey)
    }

    /// XORs the keystream at `offset` of the file into `data`.
    pub fn apply(&self, data: &mut [u8], offset: u64) -> std::io::Result<()> {
        let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let mut c = ChaCha20::new_from_slices(&self.0, &NONCE).map_err(|_| invalid("bad layer key"))?;
        c.try_seek(offset).map_err(|_| invalid("an extent file is larger than its layer cipher allows"))?;
        c.try_apply_keystream(data).map_err(|_| invalid("an extent file is larger than its layer cipher allows"))
    }
}

/// Encrypts what is written through it (the extent writer's file).
pub struct LayerWriter {
    file: File,
    key: Option<LayerKey>,
    offset: u64,
    buf: Vec<u8>,
}

impl LayerWriter {
    pub fn new(file: File, key: Option<LayerKey>) -> LayerWriter {
        LayerWriter { file, key, offset: 0, buf: Vec::new() }
    }

    pub fn into_file(self) -> File {
        self.file
    }
}

impl Write for LayerWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match &self.key {
            None => self.file.write(data),
            Some(k) => {
                self.buf.clear();
                self.buf.extend_from_slice(data);
                k.apply(&mut self.buf, self.offset)?;
                self.file.write_all(&self.buf)?;
                self.offset += data.len() as u64;
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A file read through the layer: a Parquet `ChunkReader`.
pub struct LayerFile {
    file: File,
    len: u64,
    key: Option<LayerKey>,
}

impl LayerFile {
    pub fn new(file: File, key: Option<LayerKey>) -> std::io::Result<LayerFile> {
        let len = file.metadata()?.len();
        Ok(LayerFile { file, len, key })
    }
}

impl Length for LayerFile {
    fn len(&self) -> u64 {
        self.len
    }
}

/// A reader at a position of a [`LayerFile`].
pub struct LayerRead {
    file: File,
    pos: u64,
    key: Option<LayerKey>,
}

impl Read for LayerRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        if let Some(k) = &self.key {
            k.apply(&mut buf[..n], self.pos)?;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl ChunkReader for LayerFile {
    type T = LayerRead;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<LayerRead> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(start))?;
        Ok(LayerRead { file, pos: start, key: self.key.clone() })
    }

    fn get_bytes(&self, start: u64, length: usize) -> datafusion::parquet::errors::Result<Bytes> {
        let mut r = self.get_read(start)?;
        let mut buf = vec![0u8; length];
        r.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }
}

/// The cluster directory as DataFusion's scans read it: extent files decrypted by their layer
/// key, range by range. Read-only.
#[derive(Debug)]
pub struct LayerStore {
    inner: LocalFileSystem,
    keys: Arc<Keyring>,
}

impl std::fmt::Display for LayerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LayerStore({})", self.inner)
    }
}

impl LayerStore {
    pub fn new(root: &std::path::Path, keys: Arc<Keyring>) -> datafusion::object_store::Result<LayerStore> {
        Ok(LayerStore { inner: LocalFileSystem::new_with_prefix(root)?, keys })
    }

    fn key_of(&self, location: &StorePath) -> datafusion::object_store::Result<Option<LayerKey>> {
        let id = location.filename().and_then(|f| f.strip_suffix(".parquet")).unwrap_or_default();
        self.keys.layer_key(id).map_err(|e| datafusion::object_store::Error::Generic { store: "kustodian", source: Box::new(e) })
    }
}

fn read_only() -> datafusion::object_store::Error {
    datafusion::object_store::Error::NotSupported { source: "the cluster's extent files are read-only to scans".into() }
}

#[async_trait::async_trait]
impl ObjectStore for LayerStore {
    async fn put_opts(&self, _: &StorePath, _: PutPayload, _: PutOptions) -> datafusion::object_store::Result<PutResult> {
        Err(read_only())
    }

    async fn put_multipart_opts(&self, _: &StorePath, _: PutMultipartOptions) -> datafusion::object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only())
    }

    async fn get_opts(&self, location: &StorePath, options: GetOptions) -> datafusion::object_store::Result<GetResult> {
        let key = self.key_of(location)?;
        let result = self.inner.get_opts(location, options).await?;
        let Some(key) = key else { return Ok(result) };
        let (meta, range, attributes) = (result.meta.clone(), result.range.clone(), result.attributes.clone());
        let mut data = result.bytes().await?.to_vec();
        key.apply(&mut data, range.start).map_err(|e| datafusion::object_store::Error::Generic { store: "kustodian", source: Box::new(e) })?;
        let payload = GetResultPayload::Stream(futures::stream::once(async move { Ok(Bytes::from(data)) }).boxed());
        Ok(GetResult { payload, meta, range, attributes })
    }

    async fn get_ranges(&self, location: &StorePath, ranges: &[Range<u64>]) -> datafusion::object_store::Result<Vec<Bytes>> {
        let key = self.key_of(location)?;
        let mut out = self.inner.get_ranges(location, ranges).await?;
        if let Some(key) = key {
            for (b, r) in out.iter_mut().zip(ranges) {
                let mut data = b.to_vec();
                key.apply(&mut data, r.start).map_err(|e| datafusion::object_store::Error::Generic { store: "kustodian", source: Box::new(e) })?;
                *b = Bytes::from(data);
            }
        }
        Ok(out)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, datafusion::object_store::Result<StorePath>>,
    ) -> BoxStream<'static, datafusion::object_store::Result<StorePath>> {
        locations.map(|_| Err(read_only())).boxed()
    }

    fn list(&self, prefix: Option<&StorePath>) -> BoxStream<'static, datafusion::object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&StorePath>) -> datafusion::object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, _: &StorePath, _: &StorePath, _: CopyOptions) -> datafusion::object_store::Result<()> {
        Err(read_only())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn any_range_decrypts_alone() {
        let key = LayerKey::new(&[7u8; 32]).unwrap();
        let plain: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut enc = plain.clone();
        key.apply(&mut enc, 0).unwrap();
        assert_ne!(enc, plain);
        for (a, b) in [(0, 10), (63, 65), (64, 200), (4097, 9999)] {
            let mut part = enc[a..b].to_vec();
            key.apply(&mut part, a as u64).unwrap();
            assert_eq!(part, plain[a..b]);
        }
        // Through the writer and the chunk reader.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = LayerWriter::new(File::create(&path).unwrap(), Some(key.clone()));
        for chunk in plain.chunks(333) {
            w.write_all(chunk).unwrap();
        }
        drop(w.into_file());
        assert_eq!(std::fs::read(&path).unwrap(), enc);
        let f = LayerFile::new(File::open(&path).unwrap(), Some(key)).unwrap();
        assert_eq!(f.get_bytes(5000, 100).unwrap().as_ref(), &plain[5000..5100]);
    }
}
