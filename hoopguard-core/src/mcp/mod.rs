//! MCP on the wire: JSON-RPC messages and what they ask for, server-sent events, and tool pins.
//!
//! * [`parse`] reads a POSTed body (one message or a batch) and says what each message asks:
//!   [`Ask::Decide`] for `tools/call`, `resources/read` and `prompts/get` (with the [`Call`]
//!   the policy decides), [`Ask::ListTools`] for `tools/list` (whose answer is filtered), and
//!   [`Ask::Pass`] for everything else (initialize, notifications, pings, responses).
//! * [`check_mirrored`] refuses a request whose `Mcp-Method`, `Mcp-Name` or
//!   `MCP-Protocol-Version` header says something other than its body (MCP 2026-07-28).
//! * [`error`] builds the JSON-RPC error objects hoopguard answers with.
//! * [`sse::Events`] splits an event stream incrementally and re-emits events with new data.
//! * [`Pins`] fixes each tool's definition the first time a server lists it, and reports a
//!   later change.
//!
//! # Example
//!
//! ```
//! use hoopguard_core::mcp::{Ask, parse};
//! use hoopguard_core::policy::Call;
//!
//! let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;
//! let msgs = parse(body).unwrap();
//! match &msgs.items[0].ask {
//!     Ask::Decide(Call::McpTool { name, args }) => {
//!         assert_eq!(name, "echo");
//!         assert_eq!(args["message"], "hi");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

mod headers;
pub mod sse;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::policy::{Call, canonical_json};

pub use headers::{HEADER_MISMATCH, MIRRORING_REVISION, Mirrored, check_mirrored, name_member};

/// JSON-RPC: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: the message is not a valid request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: the parameters are wrong.
pub const INVALID_PARAMS: i64 = -32602;
/// hoopguard: the policy denied the call.
pub const DENIED: i64 = -32001;
/// hoopguard: the call waits for a human approval.
pub const APPROVAL_PENDING: i64 = -32002;
/// hoopguard: the call could not be decided or recorded (fail closed).
pub const UNAVAILABLE: i64 = -32003;
/// hoopguard: a rate limit or budget of the caller is used up; `data.retry_after` says when
/// to try again (seconds).
pub const RATE_LIMITED: i64 = -32004;

/// What one message asks of the guard.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// A call the policy decides.
    Decide(Call),
    /// `tools/list`: forwarded, its answer filtered.
    ListTools,
    /// Anything else: forwarded as is.
    Pass,
}

/// One message of a POSTed body.
#[derive(Debug, Clone)]
pub struct Item {
    /// The message as received.
    pub message: Value,
    /// Its id, for requests.
    pub id: Option<Value>,
    /// What it asks.
    pub ask: Ask,
}

/// A POSTed body, parsed.
#[derive(Debug, Clone)]
pub struct Messages {
    /// Whether it was a batch (an array).
    pub batch: bool,
    /// The messages, in order.
    pub items: Vec<Item>,
}

/// Why a body or message is refused, as a JSON-RPC error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RpcError {
    /// The JSON-RPC error code.
    pub code: i64,
    /// What is wrong.
    pub message: String,
    /// The id of the offending message, when it had one.
    pub id: Option<Value>,
}

/// A JSON-RPC error response.
pub fn error(id: Option<&Value>, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut err = json!({"code": code, "message": message});
    if let Some(d) = data {
        err["data"] = d;
    }
    json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": err})
}

/// Parses a POSTed body: one JSON-RPC message or a non-empty batch. A message that is not
/// valid JSON-RPC fails the whole body, naming the message. A key given twice in one object
/// (two `name`s, two `arguments`) is refused: the server might read the other one.
pub fn parse(body: &[u8]) -> Result<Messages, RpcError> {
    let value: Value = crate::json::parse_strict(body).map_err(|e| RpcError {
        code: PARSE_ERROR,
        message: format!("the body is not JSON that can be read one way only: {e}"),
        id: None,
    })?;
    let (batch, raw) = match value {
        Value::Array(items) if items.is_empty() => {
            return Err(RpcError {
                code: INVALID_REQUEST,
                message: "an empty batch".into(),
                id: None,
            });
        }
        Value::Array(items) => (true, items),
        other => (false, vec![other]),
    };
    let items = raw
        .into_iter()
        .map(|m| {
            let (id, ask) = ask(&m)?;
            Ok(Item {
                message: m,
                id,
                ask,
            })
        })
        .collect::<Result<_, RpcError>>()?;
    Ok(Messages { batch, items })
}

/// Parses one newline-delimited message (stdio transport), which is never a batch.
pub fn parse_line(line: &[u8]) -> Result<Item, RpcError> {
    let mut m = parse(line)?;
    if m.batch {
        return Err(RpcError {
            code: INVALID_REQUEST,
            message: "batches are not accepted on stdio".into(),
            id: None,
        });
    }
    Ok(m.items.remove(0))
}

fn ask(m: &Value) -> Result<(Option<Value>, Ask), RpcError> {
    let invalid = |msg: &str, id: Option<Value>| RpcError {
        code: INVALID_REQUEST,
        message: msg.to_string(),
        id,
    };
    let Some(obj) = m.as_object() else {
        return Err(invalid("a message must be a JSON object", None));
    };
    let id = obj.get("id").cloned();
    if let Some(i) = &id {
        if !(i.is_string() || i.is_number()) {
            return Err(invalid("the id must be a string or a number", None));
        }
    }
    if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return Err(invalid("`jsonrpc` must be \"2.0\"", id));
    }
    let method = match obj.get("method") {
        None => return Ok((id, Ask::Pass)), // a response to the server
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(invalid("`method` must be a string", id)),
    };
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    let bad_params = |msg: String, id: Option<Value>| RpcError {
        code: INVALID_PARAMS,
        message: msg,
        id,
    };
    let string_param = |key: &str| -> Result<String, RpcError> {
        params
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                bad_params(
                    format!("`{method}` needs a string `params.{key}`"),
                    id.clone(),
                )
            })
    };
    let ask = match method {
        "tools/call" => Ask::Decide(Call::McpTool {
            name: string_param("name")?,
            args: params.get("arguments").cloned().unwrap_or(json!({})),
        }),
        "resources/read" => Ask::Decide(Call::McpResource {
            uri: string_param("uri")?,
        }),
        "prompts/get" => Ask::Decide(Call::McpPrompt {
            name: string_param("name")?,
        }),
        "tools/list" => Ask::ListTools,
        _ => Ask::Pass,
    };
    if id.is_none() && ask != Ask::Pass {
        // A call without an id would get no answer: nothing could tell the caller it was refused.
        return Err(invalid("a call must have an id", None));
    }
    Ok((id, ask))
}

/// For a `tools/list` answer: keeps the tools `keep` accepts, and returns the names removed.
pub fn filter_tools(response: &mut Value, mut keep: impl FnMut(&Value) -> bool) -> Vec<String> {
    let Some(tools) = response
        .get_mut("result")
        .and_then(|r| r.get_mut("tools"))
        .and_then(Value::as_array_mut)
    else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    tools.retain(|t| {
        let k = keep(t);
        if !k {
            removed.push(t["name"].as_str().unwrap_or("?").to_string());
        }
        k
    });
    removed
}

/// The id of a response message (a message with `result` or `error` and no `method`).
pub fn response_id(m: &Value) -> Option<&Value> {
    let o = m.as_object()?;
    if o.contains_key("method") || !(o.contains_key("result") || o.contains_key("error")) {
        return None;
    }
    o.get("id")
}

/// Tool definitions fixed the first time each server lists them.
///
/// A tool's pin is the SHA-256 of its canonical definition (name, title, description, input and
/// output schema, annotations). A later list with a different definition is a change: a server
/// that rewrites a tool's description after it was trusted (a "rug pull") is caught. Pins are
/// kept in a JSON file when a path is given, so they survive restarts.
#[derive(Debug)]
pub struct Pins {
    path: Option<PathBuf>,
    pins: Mutex<HashMap<String, HashMap<String, String>>>,
    changed: Mutex<std::collections::HashSet<(String, String)>>,
}

/// One tool's pin, as replicas share it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinEntry {
    /// The MCP server (as the gateway names it).
    pub server: String,
    /// The tool.
    pub tool: String,
    /// The SHA-256 of its definition when first listed ([`Pins::digest`]).
    pub digest: String,
    /// Whether it was since listed with another definition.
    pub changed: bool,
}

/// The result of checking a listed tool against its pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinCheck {
    /// Seen for the first time: now pinned.
    New,
    /// The same definition as pinned.
    Same,
    /// A different definition than pinned.
    Changed,
}

impl Pins {
    /// Pins kept in memory only.
    pub fn in_memory() -> Pins {
        Pins {
            path: None,
            pins: Mutex::new(HashMap::new()),
            changed: Mutex::default(),
        }
    }

    /// Pins kept in `path` (read now if it exists).
    pub fn open(path: PathBuf) -> std::io::Result<Pins> {
        let pins = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Pins {
            path: Some(path),
            pins: Mutex::new(pins),
            changed: Mutex::default(),
        })
    }

    /// The pin of a tool definition.
    pub fn digest(tool: &Value) -> String {
        let mut def = json!({});
        for key in [
            "name",
            "title",
            "description",
            "inputSchema",
            "outputSchema",
            "annotations",
        ] {
            if let Some(v) = tool.get(key) {
                def[key] = v.clone();
            }
        }
        let bytes = serde_json::to_vec(&canonical_json(def)).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }

    /// Checks (and pins, if new) one listed tool of `server`.
    pub fn check(&self, server: &str, tool: &Value) -> std::io::Result<PinCheck> {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or("");
        let digest = Self::digest(tool);
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        let server_pins = pins.entry(server.to_string()).or_default();
        match server_pins.get(name) {
            Some(d) if *d == digest => Ok(PinCheck::Same),
            Some(_) => {
                self.changed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((server.to_string(), name.to_string()));
                Ok(PinCheck::Changed)
            }
            None => {
                server_pins.insert(name.to_string(), digest);
                self.persist(&pins)?;
                Ok(PinCheck::New)
            }
        }
    }

    /// Writes `pins` to the pins file, if there is one (whole, then renamed into place).
    fn persist(&self, pins: &HashMap<String, HashMap<String, String>>) -> std::io::Result<()> {
        if let Some(path) = &self.path {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(pins)?)?;
            std::fs::rename(&tmp, path)?;
        }
        Ok(())
    }

    /// Every pin, and whether it was seen changed: what a replica shares
    /// ([`Database::sync_pins`](crate::shared::Database::sync_pins)).
    pub fn entries(&self) -> Vec<PinEntry> {
        let pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        let changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (server, tools) in pins.iter() {
            for (tool, digest) in tools {
                out.push(PinEntry {
                    changed: changed.contains(&(server.clone(), tool.clone())),
                    server: server.clone(),
                    tool: tool.clone(),
                    digest: digest.clone(),
                });
            }
        }
        out
    }

    /// Takes in a pin another replica shares: the first pin of a tool anywhere is its pin; a
    /// local pin of another definition means the server showed two definitions, and the tool
    /// is marked changed, as it is when the shared pin says so.
    pub fn adopt(&self, shared: &PinEntry) -> std::io::Result<()> {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        let server_pins = pins.entry(shared.server.clone()).or_default();
        let mut changed = shared.changed;
        let write = match server_pins.get(&shared.tool) {
            Some(d) if *d == shared.digest => false,
            Some(_) => {
                changed = true;
                true
            }
            None => true,
        };
        if write {
            server_pins.insert(shared.tool.clone(), shared.digest.clone());
            self.persist(&pins)?;
        }
        if changed {
            self.changed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((shared.server.clone(), shared.tool.clone()));
        }
        Ok(())
    }

    /// Whether `tool` of `server` was listed with a definition other than its pin (calls to it
    /// are then refused until an operator removes the pin).
    pub fn is_changed(&self, server: &str, tool: &str) -> bool {
        self.changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(server.to_string(), tool.to_string()))
    }
}

#[cfg(test)]
mod tests;
