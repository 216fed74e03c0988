//! Server-sent events, incrementally: split a stream into events as they complete, and write an
//! event back with its data replaced, its other fields (`id`, `event`, `retry`) and comments kept.

/// One event, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's lines, without their line endings, in order.
    pub lines: Vec<String>,
}

impl Event {
    /// The data: its `data:` lines joined with `\n`, if it has any.
    pub fn data(&self) -> Option<String> {
        let mut parts = self.lines.iter().filter_map(|l| {
            l.strip_prefix("data:")
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
        });
        let first = parts.next()?;
        let mut out = first.to_string();
        for p in parts {
            out.push('\n');
            out.push_str(p);
        }
        Some(out)
    }

    /// The event written out, with `data` (if given) in place of its data lines.
    pub fn to_bytes(&self, data: Option<&str>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut data_written = false;
        for l in &self.lines {
            if l.starts_with("data:") {
                if let Some(d) = data {
                    if !data_written {
                        for dl in d.split('\n') {
                            out.extend_from_slice(b"data: ");
                            out.extend_from_slice(dl.as_bytes());
                            out.push(b'\n');
                        }
                        data_written = true;
                    }
                    continue;
                }
            }
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out
    }
}

/// Why a stream was cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event is larger than {0} bytes")]
pub struct TooLarge(pub usize);

/// The incremental splitter.
#[derive(Debug)]
pub struct Events {
    buf: Vec<u8>,
    max: usize,
}

impl Events {
    /// A splitter that refuses events larger than `max` bytes.
    pub fn new(max: usize) -> Events {
        Events {
            buf: Vec::new(),
            max,
        }
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Event>, TooLarge> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            // An event ends at a blank line: "\n\n", "\r\n\r\n" or "\r\r".
            let end = find_blank(&self.buf);
            let Some((end, skip)) = end else {
                if self.buf.len() > self.max {
                    return Err(TooLarge(self.max));
                }
                break;
            };
            let raw: Vec<u8> = self.buf.drain(..end + skip).take(end).collect();
            let text = String::from_utf8_lossy(&raw);
            let lines = text
                .split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
                .collect();
            out.push(Event { lines });
        }
        Ok(out)
    }

    /// Bytes of an unfinished event left at the end of the stream.
    pub fn rest(&self) -> &[u8] {
        &self.buf
    }
}

fn find_blank(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'\n' && b[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if b[i] == b'\n' && b[i + 1] == b'\r' && b.get(i + 2) == Some(&b'\n') {
            return Some((i, 3));
        }
        if b[i] == b'\r' && b[i + 1] == b'\r' {
            return Some((i, 2));
        }
        i += 1;
    }
    None
}
