//! The masking body frame by frame: every cut of the body, gzip, SSE framing, binary types,
//! unknown encodings, trailers.

use std::convert::Infallible;
use std::io::Write;

use bytes::Bytes;
use futures_util::stream;
use hoopguard_core::mask::{Engine, MaskConfig};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tower::{ServiceBuilder, ServiceExt};

use super::*;

type Frames = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn body(chunks: Vec<Vec<u8>>, trailers: Option<HeaderMap>) -> Frames {
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = chunks
        .into_iter()
        .map(|c| Ok(Frame::data(Bytes::from(c))))
        .collect();
    if let Some(t) = trailers {
        frames.push(Ok(Frame::trailers(t)));
    }
    StreamBody::new(stream::iter(frames))
}

fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(&MaskConfig::default()).unwrap())
}

async fn run(headers: &[(&str, &str)], chunks: Vec<Vec<u8>>) -> (Response<()>, Vec<u8>) {
    run_with(MaskLayer::new(engine()), headers, chunks).await
}

async fn run_with(
    layer: MaskLayer,
    headers: &[(&str, &str)],
    chunks: Vec<Vec<u8>>,
) -> (Response<()>, Vec<u8>) {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |req: Request<()>| {
            assert_eq!(req.headers()["accept-encoding"], "identity");
            let mut resp = Response::new(body(chunks.clone(), None));
            for (k, v) in &headers {
                resp.headers_mut().insert(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            async move { Ok::<_, Infallible>(resp) }
        });
    let resp = svc.oneshot(Request::new(())).await.unwrap();
    let (parts, b) = resp.into_parts();
    let bytes = b.collect().await.unwrap().to_bytes().to_vec();
    (Response::from_parts(parts, ()), bytes)
}

const DOC: &str = r#"{"Credentials":{"AccessKeyId":"ASIAY34FZKBOKMUTVV7A","SecretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","SessionToken":"FwoGZXIvYXdzEJr"},"Owner":"alice@example.com"}"#;

#[tokio::test]
async fn every_cut_of_the_body_gives_the_same_masked_output() {
    let want = engine().mask(DOC.as_bytes()).0;
    assert!(!String::from_utf8_lossy(&want).contains("ASIAY34"));
    for cut in 0..=DOC.len() {
        let chunks = vec![
            DOC.as_bytes()[..cut].to_vec(),
            DOC.as_bytes()[cut..].to_vec(),
        ];
        let (resp, out) = run(
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("content-length", "999"),
                ("x-amz-crc32", "12345"),
            ],
            chunks,
        )
        .await;
        assert_eq!(out, want, "cut at {cut}");
        assert!(resp.headers().get(CONTENT_LENGTH).is_none());
        assert!(resp.headers().get("x-amz-crc32").is_none());
    }
}

#[tokio::test]
async fn gzip_and_deflate_are_decoded_and_masked() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(DOC.as_bytes()).unwrap();
    let compressed = gz.finish().unwrap();
    let chunks: Vec<Vec<u8>> = compressed.chunks(7).map(|c| c.to_vec()).collect();
    let (resp, out) = run(
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        chunks,
    )
    .await;
    assert!(
        resp.headers().get(CONTENT_ENCODING).is_none(),
        "sent on decoded"
    );
    assert_eq!(out, engine().mask(DOC.as_bytes()).0);

    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(DOC.as_bytes()).unwrap();
    let (_, out) = run(
        &[("content-encoding", "deflate")],
        vec![z.finish().unwrap()],
    )
    .await;
    assert_eq!(out, engine().mask(DOC.as_bytes()).0);
}

#[tokio::test]
async fn an_encoding_that_cannot_be_decoded_is_refused() {
    let (resp, out) = run(
        &[("content-encoding", "br")],
        vec![b"\x1b\x00secret-bytes".to_vec()],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("unmaskable_response"), "{text}");
    assert!(!text.contains("secret-bytes"));
}

#[tokio::test]
async fn binary_types_pass_untouched() {
    let data = b"\x89PNG AKIAIOSFODNN7EXAMPLE".to_vec();
    let (resp, out) = run(
        &[("content-type", "image/png"), ("content-length", "25")],
        vec![data.clone()],
    )
    .await;
    assert_eq!(out, data);
    assert_eq!(resp.headers()["content-length"], "25");
}

#[tokio::test]
async fn passthrough_types_come_from_the_config() {
    let cfg: MaskConfig = toml::from_str("passthrough_types = [\"Text/Plain\"]").unwrap();
    let data = b"key AKIAIOSFODNN7EXAMPLE".to_vec();
    let layer = || MaskLayer::from_config(engine(), &cfg);
    let (_, out) = run_with(
        layer(),
        &[("content-type", "text/plain")],
        vec![data.clone()],
    )
    .await;
    assert_eq!(out, data, "named: passed untouched");
    let (_, out) = run_with(
        layer(),
        &[("content-type", "image/png")],
        vec![data.clone()],
    )
    .await;
    assert_eq!(
        out, b"key [MASKED:aws-access-key-id]",
        "the default list is replaced"
    );
}

#[tokio::test]
async fn sse_events_are_masked_inside_data_lines_and_sent_when_complete() {
    let ev1 = "event: message\nid: 1\ndata: {\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"key AKIAIOSFODNN7EXAMPLE\"}]}}\n\n";
    let ev2 = "data: {\"token\":\"ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789\"}\r\n\r\n";
    let svc = ServiceBuilder::new()
        .layer(MaskLayer::new(engine()))
        .service_fn(move |_req: Request<()>| async move {
            let whole = format!("{ev1}{ev2}");
            let (a, b) = whole.split_at(30);
            let (b, c) = b.split_at(ev1.len() - 30 + 5);
            let mut resp = Response::new(body(vec![a.into(), b.into(), c.into()], None));
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            Ok::<_, Infallible>(resp)
        });
    let resp = svc.oneshot(Request::new(())).await.unwrap();
    let mut b = resp.into_body();
    // The first complete event comes out on its own, before the stream ends.
    let first = b.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(
        String::from_utf8(first.to_vec()).unwrap(),
        "event: message\nid: 1\ndata: {\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"key [MASKED:aws-access-key-id]\"}]}}\n\n"
    );
    let rest = b.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "data: {\"token\":\"[MASKED:github-token]\"}\r\n\r\n");
}

#[tokio::test]
async fn trailers_pass_through() {
    let mut t = HeaderMap::new();
    t.insert("x-checksum", HeaderValue::from_static("abc"));
    let svc = ServiceBuilder::new()
        .layer(MaskLayer::new(engine()))
        .service_fn(move |_req: Request<()>| {
            let t = t.clone();
            async move {
                Ok::<_, Infallible>(Response::new(body(
                    vec![b"alice@example.com".to_vec()],
                    Some(t),
                )))
            }
        });
    let collected = svc
        .oneshot(Request::new(()))
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    assert_eq!(collected.trailers().unwrap()["x-checksum"], "abc");
    assert_eq!(collected.to_bytes(), "[MASKED:email]");
}
