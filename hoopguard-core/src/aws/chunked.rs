//! De-framing `Content-Encoding: aws-chunked` request bodies.
//!
//! An SDK that streams an upload without knowing its hash up front frames it as
//! `hex-size[;chunk-signature=…]\r\n data \r\n … 0[;chunk-signature=…]\r\n [trailers] \r\n`.
//! The framing is between the caller and whoever checks its signature, so hoopguard removes it,
//! checks each chunk's signature (signed chunks are chained from the request's own signature),
//! and forwards the plain bytes. Forwarding the framing untouched would store it inside the
//! object.
//!
//! [`Dechunker`] is incremental: feed it whatever the network delivered and it returns the
//! payload bytes it could decode, holding back at most one partial chunk header.

use aws_lc_rs::{digest, hmac};
use bytes::{Buf, Bytes, BytesMut};

/// The longest chunk header accepted (`hex;chunk-signature=<64 hex>\r\n` is ~85 bytes).
const MAX_HEADER: usize = 256;
/// The longest trailer section accepted.
const MAX_TRAILERS: usize = 4096;

/// How the caller framed its payload (`x-amz-content-sha256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: every chunk signed.
    Signed,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: plain chunks, checksum in a trailer.
    UnsignedTrailer,
}

impl Framing {
    /// The framing named by an `x-amz-content-sha256` value, if it is a streaming one that
    /// hoopguard de-frames.
    pub fn from_content_sha256(value: &str) -> Option<Framing> {
        match value {
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Some(Framing::Signed),
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Some(Framing::UnsignedTrailer),
            _ => None,
        }
    }
}

/// What a signed chunk's signature is chained from: the request's key, date, scope and
/// signature.
#[derive(Clone)]
pub struct ChunkSeed {
    pub(crate) key: hmac::Key,
    pub(crate) amz_date: String,
    pub(crate) scope: String,
    pub(crate) signature: String,
}

impl std::fmt::Debug for ChunkSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSeed")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ChunkSeed {
    /// A seed from a plain secret, for callers that hold one (tests, tools).
    pub fn from_secret(
        secret: &str,
        amz_date: &str,
        region: &str,
        service: &str,
        seed_signature: &str,
    ) -> ChunkSeed {
        let date = amz_date.get(..8).unwrap_or(amz_date);
        ChunkSeed {
            key: super::signing::signing_key(secret, date, region, service),
            amz_date: amz_date.to_string(),
            scope: format!("{date}/{region}/{service}/aws4_request"),
            signature: seed_signature.to_string(),
        }
    }
}

/// Why a framed body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The framing is broken.
    #[error("the aws-chunked body is malformed: {0}")]
    Malformed(&'static str),
    /// A chunk's signature does not match.
    #[error("an aws-chunked chunk signature does not match")]
    Signature,
    /// The payload is not as long as `x-amz-decoded-content-length` says.
    #[error("the aws-chunked body does not have the declared decoded length")]
    Length,
}

enum State {
    Header,
    Data { left: usize },
    DataEnd,
    Trailers,
    Done,
}

/// How long the text before `marker` is at least, when `buf` holds no complete `marker`: its
/// length, less what at its end could be the start of the marker.
fn least_len(buf: &[u8], marker: &[u8]) -> usize {
    let partial = (1..marker.len())
        .rev()
        .find(|&k| buf.ends_with(&marker[..k]))
        .unwrap_or(0);
    buf.len() - partial
}

/// The incremental de-framer. See the module docs.
pub struct Dechunker {
    framing: Framing,
    seed: Option<ChunkSeed>,
    state: State,
    buf: BytesMut,
    chunk_sig: Option<String>,
    chunk_hash: Option<digest::Context>,
    decoded: u64,
    expected: Option<u64>,
    last: bool,
}

impl std::fmt::Debug for Dechunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dechunker")
            .field("framing", &self.framing)
            .field("decoded", &self.decoded)
            .finish_non_exhaustive()
    }
}

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

impl Dechunker {
    /// A de-framer. Signed framing needs the `seed`; `expected` is the declared decoded length.
    pub fn new(framing: Framing, seed: Option<ChunkSeed>, expected: Option<u64>) -> Dechunker {
        Dechunker {
            framing,
            seed,
            state: State::Header,
            buf: BytesMut::new(),
            chunk_sig: None,
            chunk_hash: None,
            decoded: 0,
            expected,
            last: false,
        }
    }

    /// Whether the final chunk and trailers were seen.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Feeds bytes; returns the payload decoded so far (possibly empty).
    pub fn push(&mut self, input: &[u8]) -> Result<Vec<Bytes>, ChunkError> {
        self.buf.extend_from_slice(input);
        let mut out = Vec::new();
        loop {
            match self.state {
                State::Header => {
                    // The limit holds however the bytes arrive: a header is too long whether
                    // its CRLF came in the same read or not.
                    let found = find_crlf(&self.buf);
                    if found.unwrap_or_else(|| least_len(&self.buf, b"\r\n")) > MAX_HEADER {
                        return Err(ChunkError::Malformed("chunk header too long"));
                    }
                    let Some(end) = found else {
                        break;
                    };
                    let line = self.buf.split_to(end + 2);
                    let line = std::str::from_utf8(&line[..end])
                        .map_err(|_| ChunkError::Malformed("chunk header is not text"))?;
                    let (size, ext) = line.split_once(';').unwrap_or((line, ""));
                    let size = usize::from_str_radix(size.trim(), 16)
                        .map_err(|_| ChunkError::Malformed("chunk size is not hex"))?;
                    self.chunk_sig = match self.framing {
                        Framing::Signed => Some(
                            ext.trim()
                                .strip_prefix("chunk-signature=")
                                .filter(|s| s.len() == 64)
                                .ok_or(ChunkError::Malformed("a signed chunk has no signature"))?
                                .to_string(),
                        ),
                        Framing::UnsignedTrailer => None,
                    };
                    if self.framing == Framing::Signed {
                        self.chunk_hash = Some(digest::Context::new(&digest::SHA256));
                    }
                    if size == 0 {
                        self.last = true;
                        self.finish_chunk()?;
                        self.state = match self.framing {
                            Framing::Signed => State::DataEnd,
                            Framing::UnsignedTrailer => State::Trailers,
                        };
                    } else {
                        self.state = State::Data { left: size };
                    }
                }
                State::Data { left } => {
                    if self.buf.is_empty() {
                        break;
                    }
                    let n = left.min(self.buf.len());
                    let data = self.buf.split_to(n).freeze();
                    if let Some(h) = self.chunk_hash.as_mut() {
                        h.update(&data);
                    }
                    self.decoded += n as u64;
                    if self.expected.is_some_and(|e| self.decoded > e) {
                        return Err(ChunkError::Length);
                    }
                    out.push(data);
                    self.state = if left == n {
                        State::DataEnd
                    } else {
                        State::Data { left: left - n }
                    };
                }
                State::DataEnd => {
                    if self.buf.len() < 2 {
                        break;
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err(ChunkError::Malformed("chunk data is not followed by CRLF"));
                    }
                    self.buf.advance(2);
                    if self.chunk_sig.is_some() {
                        self.finish_chunk()?;
                    }
                    // A signed body ends with its zero-length chunk, whose CRLF this was.
                    if self.last {
                        self.state = State::Done;
                        self.check_length()?;
                    } else {
                        self.state = State::Header;
                    }
                }
                State::Trailers => {
                    // Trailer lines end with an empty line; checksums in them are for the
                    // framed upload and are not forwarded (see the module docs).
                    // No trailers: the section is one empty line. Otherwise it ends at the
                    // first empty line — decided the same way however the bytes arrive.
                    let end = if self.buf.starts_with(b"\r\n") {
                        Some(usize::MAX)
                    } else if self.buf.len() < 2 {
                        None
                    } else {
                        find(&self.buf, b"\r\n\r\n")
                    };
                    let least = match end {
                        Some(usize::MAX) => 0,
                        Some(e) => e,
                        None => least_len(&self.buf, b"\r\n\r\n"),
                    };
                    if least > MAX_TRAILERS {
                        return Err(ChunkError::Malformed("trailers too long"));
                    }
                    let Some(end) = end else {
                        break;
                    };
                    let consumed = if end == usize::MAX { 2 } else { end + 4 };
                    self.buf.advance(consumed);
                    self.state = State::Done;
                    self.check_length()?;
                }
                State::Done => {
                    if !self.buf.is_empty() {
                        return Err(ChunkError::Malformed("bytes after the final chunk"));
                    }
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Called at the end of the input: the body must have ended where the framing ends.
    pub fn finish(&self) -> Result<(), ChunkError> {
        if self.is_done() {
            Ok(())
        } else {
            Err(ChunkError::Malformed("the body ended inside the framing"))
        }
    }

    fn check_length(&self) -> Result<(), ChunkError> {
        match self.expected {
            Some(e) if e != self.decoded => Err(ChunkError::Length),
            _ => Ok(()),
        }
    }

    /// Checks a signed chunk's signature once its data is complete.
    fn finish_chunk(&mut self) -> Result<(), ChunkError> {
        let (Some(given), Some(hash)) = (self.chunk_sig.take(), self.chunk_hash.take()) else {
            return Ok(());
        };
        let seed = self.seed.as_mut().ok_or(ChunkError::Signature)?;
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            seed.amz_date,
            seed.scope,
            seed.signature,
            hex::encode(hash.finish())
        );
        let expected = hex::encode(hmac::sign(&seed.key, to_sign.as_bytes()));
        if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), given.as_bytes())
            .is_err()
        {
            return Err(ChunkError::Signature);
        }
        seed.signature = expected;
        Ok(())
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    find(b, b"\r\n")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signed-chunk example from Amazon S3's documentation ("Signature calculations for the
    /// Authorization header: transferring payload in multiple chunks"): 66 560 bytes of `a` in
    /// chunks of 65 536 and 1 024 bytes, with the published seed and chunk signatures.
    fn s3_doc_example() -> (ChunkSeed, Vec<u8>) {
        let seed = ChunkSeed::from_secret(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20130524T000000Z",
            "us-east-1",
            "s3",
            "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        );
        let mut body = Vec::new();
        body.extend_from_slice(b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n");
        body.extend(std::iter::repeat_n(b'a', 65536));
        body.extend_from_slice(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
        body.extend(std::iter::repeat_n(b'a', 1024));
        body.extend_from_slice(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
        (seed, body)
    }

    fn run(d: &mut Dechunker, body: &[u8], step: usize) -> Result<Vec<u8>, ChunkError> {
        let mut out = Vec::new();
        for piece in body.chunks(step.max(1)) {
            for b in d.push(piece)? {
                out.extend_from_slice(&b);
            }
        }
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn aws_documented_signed_chunks_verify_in_any_split() {
        let (seed, body) = s3_doc_example();
        for step in [1, 7, 100, 4096, 65_600, body.len()] {
            let mut d = Dechunker::new(Framing::Signed, Some(seed.clone()), Some(66_560));
            let out = run(&mut d, &body, step).unwrap();
            assert_eq!(out.len(), 66_560, "step {step}");
            assert!(out.iter().all(|&b| b == b'a'));
        }
    }

    #[test]
    fn a_changed_byte_or_signature_is_refused() {
        let (seed, mut body) = s3_doc_example();
        body[200] = b'b';
        let mut d = Dechunker::new(Framing::Signed, Some(seed.clone()), None);
        assert_eq!(run(&mut d, &body, 4096), Err(ChunkError::Signature));
        let (_, body) = s3_doc_example();
        let other = ChunkSeed::from_secret(
            "not-the-secret",
            "20130524T000000Z",
            "us-east-1",
            "s3",
            &seed.signature,
        );
        let mut d = Dechunker::new(Framing::Signed, Some(other), None);
        assert_eq!(run(&mut d, &body, 4096), Err(ChunkError::Signature));
    }

    #[test]
    fn unsigned_chunks_with_trailer() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        for step in 1..body.len() {
            let mut d = Dechunker::new(Framing::UnsignedTrailer, None, Some(11));
            assert_eq!(
                run(&mut d, body, step).unwrap(),
                b"hello world",
                "step {step}"
            );
        }
        // No trailer at all.
        let mut d = Dechunker::new(Framing::UnsignedTrailer, None, None);
        assert_eq!(run(&mut d, b"2\r\nhi\r\n0\r\n\r\n", 3).unwrap(), b"hi");
    }

    #[test]
    fn broken_framing_is_refused() {
        let cases: [&[u8]; 5] = [
            b"zz\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhello\r\n",
            b"5\r\nhello\r\n0\r\n\r\nextra",
            b"5\r\nhel",
        ];
        for body in cases {
            let mut d = Dechunker::new(Framing::UnsignedTrailer, None, None);
            assert!(
                run(&mut d, body, 2).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let mut d = Dechunker::new(Framing::UnsignedTrailer, None, Some(4));
        assert_eq!(
            run(&mut d, b"5\r\nhello\r\n0\r\n\r\n", 20),
            Err(ChunkError::Length)
        );
        let mut d = Dechunker::new(Framing::UnsignedTrailer, None, Some(9));
        assert_eq!(
            run(&mut d, b"5\r\nhello\r\n0\r\n\r\n", 20),
            Err(ChunkError::Length)
        );
        let mut d = Dechunker::new(Framing::Signed, None, None);
        assert!(run(&mut d, b"5\r\nhello\r\n0\r\n\r\n", 20).is_err());
    }
}
