//! Signed digests: tamper evidence that holds against someone who can write the data directory.
//!
//! A plain hash chain only catches accidents — whoever can write the files can drop an event and
//! chain the rest again. So, the way CloudTrail validates its log files, a [`Digester`]
//! periodically (and when a session ends, and after retention) writes a **digest**: the sessions
//! that changed since the previous digest, each with its event count, the hash of its last event
//! and where its kept events start, chained to the previous digest by that digest's hash and
//! signed with an Ed25519 key the gateway holds *outside* the data directory. [`verify_digests`]
//! checks every digest's signature with the published public key, the chain of digests, and
//! every session against the newest digest that names it.
//!
//! What it detects, for anyone without the signing key: an event altered, removed, reordered
//! or inserted before the newest digest that covers its session; a session removed, its front
//! cut, or its last events removed; a session inserted with events older than a digest that
//! should have named it; a digest altered, forged, removed from the middle, or replaced.
//!
//! What it does not: events written after the newest digest (at most `record.digest_interval`
//! of them, and the end of a session is digested at once) are covered by the hash chain only;
//! deleting the newest digests *together with* everything they covered leaves an older, valid
//! state — `verify` prints the newest digest's time, compare it with when the gateway last ran;
//! and whoever holds the signing key (or root on the gateway host, who can read it) can sign
//! anything.
//!
//! Files: `digests/0000000001.digest`, … beside the recordings, each two lines: the JSON
//! statement that was signed, then the signature (base64).
//!
//! # Example
//!
//! ```
//! use hoopguard_core::record::{Durability, JsonlStore, Store};
//! use hoopguard_core::record::digest::{Digester, SigningKey, verify_digests};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = JsonlStore::open(dir.path(), Durability::EveryEvent).unwrap();
//! store.append("s-1", "start", serde_json::json!({"subject": "alice"})).unwrap();
//! let (_pkcs8, key) = SigningKey::generate().unwrap();
//! let public = key.public_key();
//! let digester = Digester::open(dir.path(), key).unwrap();
//! assert!(digester.digest(&store).unwrap().is_some());
//!
//! let report = verify_digests(dir.path(), &public).unwrap();
//! assert!(report.problems.is_empty(), "{:?}", report.problems);
//!
//! // Rewriting the recording — even re-chained — no longer verifies.
//! std::fs::remove_file(dir.path().join("s-1.jsonl")).unwrap();
//! std::fs::remove_file(dir.path().join("s-1.head")).unwrap();
//! assert!(!verify_digests(dir.path(), &public).unwrap().problems.is_empty());
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{GENESIS, RecordError, Store, io, line_hash, now_ms};

/// Where a session stands, as a digest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The sequence number of its last event.
    pub events: u64,
    /// The SHA-256 of its last event's line.
    pub last: String,
    /// The sequence number of its first kept event (1, until retention trims it).
    pub first_seq: u64,
    /// The `prev` of its first kept event.
    pub first_prev: String,
    /// Whether its last event is its end.
    pub ended: bool,
}

/// What one digest states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Format version.
    pub version: u32,
    /// 1, 2, 3, … with no gap.
    pub seq: u64,
    /// When it was made (Unix milliseconds).
    pub at: u64,
    /// The key it is signed with (first 16 hex digits of the public key's SHA-256).
    pub key_id: String,
    /// The SHA-256 of the previous digest's statement (64 zeros for the first).
    pub previous: String,
    /// Sessions that changed since the previous digest.
    pub sessions: BTreeMap<String, Summary>,
    /// Sessions retention removed since the previous digest.
    #[serde(default)]
    pub removed: Vec<String>,
}

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key's bytes are not an Ed25519 key.
    #[error("not an Ed25519 key: {0}")]
    Invalid(String),
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
}

/// The Ed25519 key digests are signed with. Keep it outside the data directory.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.public_key().key_id())
            .finish_non_exhaustive()
    }
}

/// The public half, to verify digests with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(Vec<u8>);

impl PublicKey {
    /// The 32 bytes, as base64 (what `--public-key` files hold).
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }

    /// The first 16 hex digits of the key's SHA-256: names the key in digests.
    pub fn key_id(&self) -> String {
        line_hash(&self.0)[..16].to_string()
    }

    /// A public key from base64 text (surrounding whitespace allowed) or the raw 32 bytes.
    pub fn parse(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let raw = if bytes.len() == 32 {
            bytes.to_vec()
        } else {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| KeyError::Invalid("neither 32 bytes nor base64 text".into()))?;
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| KeyError::Invalid(format!("not base64: {e}")))?
        };
        if raw.len() != 32 {
            return Err(KeyError::Invalid(format!(
                "{} bytes; an Ed25519 public key has 32",
                raw.len()
            )));
        }
        Ok(PublicKey(raw))
    }

    /// Reads [`PublicKey::parse`]'s formats from a file.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let bytes = std::fs::read(path).map_err(|e| KeyError::Read(path.to_path_buf(), e))?;
        PublicKey::parse(&bytes)
    }

    fn verifies(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(msg, sig)
            .is_ok()
    }
}

impl SigningKey {
    /// A new key: its PKCS#8 document (to store, mode 0600, outside the data directory) and
    /// the key.
    pub fn generate() -> Result<(Vec<u8>, SigningKey), KeyError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|_| KeyError::Invalid("no randomness".into()))?;
        let bytes = doc.as_ref().to_vec();
        let key = SigningKey::parse(&bytes)?;
        Ok((bytes, key))
    }

    /// A key from its PKCS#8 document, raw (DER) or as base64 text.
    pub fn parse(bytes: &[u8]) -> Result<SigningKey, KeyError> {
        let der = match Ed25519KeyPair::from_pkcs8(bytes) {
            Ok(pair) => return Ok(SigningKey { pair }),
            Err(_) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|t| {
                    base64::engine::general_purpose::STANDARD
                        .decode(t.trim())
                        .ok()
                })
                .ok_or_else(|| KeyError::Invalid("neither PKCS#8 DER nor base64 of it".into()))?,
        };
        Ed25519KeyPair::from_pkcs8(&der)
            .map(|pair| SigningKey { pair })
            .map_err(|e| KeyError::Invalid(e.to_string()))
    }

    /// Reads a key file ([`SigningKey::parse`]'s formats).
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let bytes = std::fs::read(path).map_err(|e| KeyError::Read(path.to_path_buf(), e))?;
        SigningKey::parse(&bytes)
    }

    /// The public key auditors verify with.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.pair.public_key().as_ref().to_vec())
    }
}

/// The directory digests are kept in, beside the recordings.
pub fn digests_dir(recordings: &Path) -> PathBuf {
    recordings.join("digests")
}

fn digest_path(recordings: &Path, seq: u64) -> PathBuf {
    digests_dir(recordings).join(format!("{seq:010}.digest"))
}

/// One digest file: the statement's bytes as signed, the statement, the signature.
struct DigestFile {
    seq_in_name: u64,
    bytes: Vec<u8>,
    statement: Option<Statement>,
    signature: Vec<u8>,
}

/// Every digest file, ordered by the number in its name.
fn read_digests(recordings: &Path) -> Result<Vec<DigestFile>, RecordError> {
    let dir = digests_dir(recordings);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(&dir))?.path();
        let Some(n) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".digest"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let text = std::fs::read(&path).map_err(io(&path))?;
        let mut lines = text.splitn(2, |b| *b == b'\n');
        let bytes = lines.next().unwrap_or_default().to_vec();
        let signature = lines
            .next()
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| {
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .ok()
            })
            .unwrap_or_default();
        out.push(DigestFile {
            seq_in_name: n,
            statement: serde_json::from_slice(&bytes).ok(),
            bytes,
            signature,
        });
    }
    out.sort_by_key(|d| d.seq_in_name);
    Ok(out)
}

struct Chain {
    seq: u64,
    previous: String,
    known: BTreeMap<String, Summary>,
}

/// Makes signed digests of a store's sessions. See the [module docs](self).
pub struct Digester {
    dir: PathBuf,
    key: SigningKey,
    chain: Mutex<Chain>,
}

impl std::fmt::Debug for Digester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digester")
            .field("dir", &self.dir)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What one digest covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    /// Its number.
    pub seq: u64,
    /// Sessions named.
    pub sessions: usize,
    /// Sessions named as removed.
    pub removed: usize,
}

impl Digester {
    /// A digester for the recordings in `dir`, continuing the chain of digests already there.
    pub fn open(dir: &Path, key: SigningKey) -> Result<Digester, RecordError> {
        let mut chain = Chain {
            seq: 0,
            previous: GENESIS.to_string(),
            known: BTreeMap::new(),
        };
        for d in read_digests(dir)? {
            let Some(st) = d.statement else {
                continue;
            };
            chain.seq = st.seq;
            chain.previous = line_hash(&d.bytes);
            for r in &st.removed {
                chain.known.remove(r);
            }
            chain.known.extend(st.sessions);
        }
        Ok(Digester {
            dir: dir.to_path_buf(),
            key,
            chain: Mutex::new(chain),
        })
    }

    /// The public key of the signing key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// Writes a digest of what changed in `store` since the last one (`None`: nothing did).
    /// The store is synced first, so a digest never names events a crash could lose.
    pub fn digest(&self, store: &dyn Store) -> Result<Option<Made>, RecordError> {
        let mut chain = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        // What each session holds now; then make it durable, so nothing named can be lost.
        let mut now = BTreeMap::new();
        for id in store.sessions()? {
            if let Some(s) = store.summary(&id)? {
                now.insert(id, s);
            }
        }
        store.sync()?;
        let sessions: BTreeMap<String, Summary> = now
            .iter()
            .filter(|(id, s)| chain.known.get(*id) != Some(*s))
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect();
        let removed: Vec<String> = chain
            .known
            .keys()
            .filter(|id| !now.contains_key(*id))
            .cloned()
            .collect();
        if sessions.is_empty() && removed.is_empty() {
            return Ok(None);
        }
        let statement = Statement {
            version: 1,
            seq: chain.seq + 1,
            at: now_ms(),
            key_id: self.key.public_key().key_id(),
            previous: chain.previous.clone(),
            sessions,
            removed,
        };
        let bytes =
            serde_json::to_vec(&statement).map_err(|e| io(&self.dir)(std::io::Error::other(e)))?;
        let signature = self.key.pair.sign(&bytes);
        let mut file = bytes.clone();
        file.push(b'\n');
        file.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(signature.as_ref())
                .as_bytes(),
        );
        file.push(b'\n');
        let dir = digests_dir(&self.dir);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = digest_path(&self.dir, statement.seq);
        let tmp = dir.join(format!("{:010}.tmp", statement.seq));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&file).map_err(io(&tmp))?;
            f.sync_data().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        let made = Made {
            seq: statement.seq,
            sessions: statement.sessions.len(),
            removed: statement.removed.len(),
        };
        chain.seq = statement.seq;
        chain.previous = line_hash(&bytes);
        for r in &statement.removed {
            chain.known.remove(r);
        }
        chain.known.extend(statement.sessions);
        Ok(Some(made))
    }
}

/// What [`verify_digests`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Digests checked.
    pub digests: usize,
    /// When the newest one was made (Unix milliseconds).
    pub newest_at: Option<u64>,
    /// Sessions checked against a digest.
    pub sessions: usize,
    /// Evidence of tampering, each naming what and where.
    pub problems: Vec<String>,
    /// What is not covered by a digest yet (events after the newest one, new sessions).
    pub notes: Vec<String>,
}

/// Checks the digests in `dir` with `public` and every session against them. See the
/// [module docs](self) for what this proves.
pub fn verify_digests(dir: &Path, public: &PublicKey) -> Result<Report, RecordError> {
    let mut report = Report::default();
    let mut previous = GENESIS.to_string();
    let mut expected = 1u64;
    // Per session: its newest summary and the time of the digest that stated it.
    let mut latest: BTreeMap<String, (Summary, u64)> = BTreeMap::new();
    let mut removed_at: BTreeMap<String, u64> = BTreeMap::new();
    for d in read_digests(dir)? {
        report.digests += 1;
        let name = format!("digest {}", d.seq_in_name);
        if !public.verifies(&d.bytes, &d.signature) {
            report.problems.push(format!(
                "{name}: the signature does not verify with key {} (the digest was altered, or signed with another key)",
                public.key_id()
            ));
            continue;
        }
        let Some(st) = d.statement else {
            report.problems.push(format!(
                "{name}: signed, but not a statement this version reads"
            ));
            continue;
        };
        if st.seq != d.seq_in_name {
            report
                .problems
                .push(format!("{name}: states number {} (renamed)", st.seq));
        }
        if st.seq != expected {
            report.problems.push(format!(
                "digest {expected}{}: missing (removed from the chain)",
                if st.seq > expected + 1 {
                    format!(" to {}", st.seq - 1)
                } else {
                    String::new()
                }
            ));
        } else if st.previous != previous {
            report.problems.push(format!(
                "{name}: does not follow the digest before it (a digest was replaced)"
            ));
        }
        expected = st.seq + 1;
        previous = line_hash(&d.bytes);
        report.newest_at = Some(st.at);
        for r in st.removed {
            latest.remove(&r);
            removed_at.insert(r, st.at);
        }
        for (id, s) in st.sessions {
            removed_at.remove(&id);
            latest.insert(id, (s, st.at));
        }
    }
    let on_disk: std::collections::BTreeSet<String> =
        super::store::session_ids(dir)?.into_iter().collect();
    for (id, (want, at)) in &latest {
        report.sessions += 1;
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(*at),
        );
        if !on_disk.contains(id) {
            report.problems.push(format!(
                "session `{id}` is missing: the digest of {when} names it with {} events",
                want.events
            ));
            continue;
        }
        match super::store::walk(dir, id, want.events) {
            Err(e) => report.problems.push(e.to_string()),
            Ok(w) => {
                if (w.first_seq, w.first_prev.as_str())
                    != (want.first_seq, want.first_prev.as_str())
                {
                    report.problems.push(format!(
                        "session `{id}`: its kept events start at {} but the digest of {when} has them start at {} (events removed from the front)",
                        w.first_seq, want.first_seq
                    ));
                } else if w.last_seq < want.events {
                    report.problems.push(format!(
                        "session `{id}`: has {} events, the digest of {when} {} (events removed from the end)",
                        w.last_seq, want.events
                    ));
                } else if w.hash_at.as_deref() != Some(want.last.as_str()) {
                    report.problems.push(format!(
                        "session `{id}`: event {} is not the one the digest of {when} signed (events altered or rewritten)",
                        want.events
                    ));
                } else if w.last_seq > want.events {
                    report.notes.push(format!(
                        "session `{id}`: events {} to {} are after the newest digest that names it (hash chain only)",
                        want.events + 1,
                        w.last_seq
                    ));
                }
            }
        }
    }
    let newest = report.newest_at.unwrap_or(0);
    for id in on_disk.iter().filter(|id| !latest.contains_key(*id)) {
        let first_at = super::store::read(dir, id)
            .ok()
            .and_then(|events| events.first().map(|e| e.at));
        match (removed_at.get(id), first_at) {
            (Some(_), _) => report.problems.push(format!(
                "session `{id}` is there although a digest names it removed by retention"
            )),
            (None, Some(t)) if report.digests > 0 && t < newest => {
                report.problems.push(format!(
                    "session `{id}` is named by no digest although its events are older than the newest digest (inserted)"
                ))
            }
            _ => report
                .notes
                .push(format!("session `{id}` is newer than the newest digest (hash chain only)")),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
