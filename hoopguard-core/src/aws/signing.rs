//! The SigV4 key derivation, shared by the request check (`sigv4`) and the chunk
//! signatures of `aws-chunked` bodies ([`chunked`](super::chunked)); a leaf, so neither of
//! those modules depends on the other for it.

use aws_lc_rs::hmac;

/// The SigV4 signing key for `secret` on `date` (`YYYYMMDD`) in `region` for `service`:
/// HMAC-SHA256 chained over the date, region, service and `aws4_request`.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let mut k = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{secret}").as_bytes()),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        k = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, k.as_ref()),
            part.as_bytes(),
        );
    }
    hmac::Key::new(hmac::HMAC_SHA256, k.as_ref())
}
