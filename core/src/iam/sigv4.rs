//! AWS Signature Version 4 verification: the canonical request, the string to sign, the
//! derived signing key, the date scope and the allowed clock skew, as AWS documents them (and
//! as botocore signs for services other than S3: the path is normalized and encoded twice).

use std::fmt::Write as _;

use ring::{digest, hmac};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::{Error, ErrorKind, Result};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// AWS refuses signatures more than 15 minutes away from its clock.
const MAX_SKEW_MILLIS: i64 = 15 * 60 * 1000;

/// An HTTP request as it arrived, for signature verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct SignedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path as sent (percent-encoded), e.g. `/`.
    pub path: String,
    /// The query string as sent, without `?` (may be empty).
    #[serde(default)]
    pub query: String,
    /// Header names and values as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    #[serde(default, with = "body_base64")]
    pub body: Vec<u8>,
}

impl SignedRequest {
    /// A request with these parts.
    pub fn new(
        method: &str,
        path: &str,
        query: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Self {
        SignedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body,
        }
    }

    /// Verifies the request's signature with `secret` for `region`, at `now_millis` (AWS allows
    /// 15 minutes of clock skew); returns the access key id the signature names. The keep calls
    /// this for callers built with [`crate::Caller::signed_request`]; host applications may use
    /// it directly.
    ///
    /// # Errors
    /// `AccessDenied` with AWS's codes: `IncompleteSignature`, `SignatureDoesNotMatch`,
    /// `MissingAuthenticationToken`.
    pub fn verify(&self, secret: &[u8], region: &str, now_millis: i64) -> Result<String> {
        let auth = parse_authorization(self)?;
        verify(self, &auth, secret, region, now_millis)?;
        Ok(auth.access_key_id.to_owned())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

mod body_base64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(body))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// The parsed `Authorization` header.
#[derive(Debug)]
pub(crate) struct Authorization<'r> {
    pub access_key_id: &'r str,
    date: &'r str,
    region: &'r str,
    service: &'r str,
    signed_headers: Vec<&'r str>,
    signature: &'r str,
}

fn incomplete(why: &str) -> Error {
    Error::aws(
        ErrorKind::AccessDenied,
        "IncompleteSignature",
        why.to_owned(),
    )
    .with_status(403)
}

/// Reads the `Authorization` header of `request`.
pub(crate) fn parse_authorization(request: &SignedRequest) -> Result<Authorization<'_>> {
    let header = request.header("authorization").ok_or_else(|| {
        Error::aws(
            ErrorKind::AccessDenied,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
        .with_status(403)
    })?;
    let rest = header.strip_prefix(ALGORITHM).ok_or_else(|| {
        incomplete("Unsupported signing algorithm; only AWS4-HMAC-SHA256 is accepted")
    })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(incomplete(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters",
        ));
    };
    let mut scope = credential.split('/');
    let (Some(id), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(incomplete(
            "Credential must be ACCESS_KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    let signed_headers: Vec<&str> = signed.split(';').collect();
    if !signed_headers.contains(&"host") {
        return Err(incomplete("SignedHeaders must include host"));
    }
    Ok(Authorization {
        access_key_id: id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// Verifies `request`'s signature with `secret`, the keep's `region`, the expected `service`
/// (if known) and the current time.
pub(crate) fn verify(
    request: &SignedRequest,
    auth: &Authorization<'_>,
    secret: &[u8],
    region: &str,
    now_millis: i64,
) -> Result<()> {
    let amz_date = request
        .header("x-amz-date")
        .ok_or_else(|| incomplete("The request must carry an X-Amz-Date header"))?;
    let when = parse_amz_date(amz_date)
        .ok_or_else(|| incomplete("X-Amz-Date is not YYYYMMDD'T'HHMMSS'Z'"))?;
    if amz_date.get(..8) != Some(auth.date) {
        return Err(super::signature_mismatch());
    }
    if auth.region != region {
        return Err(super::signature_mismatch().with_status(403));
    }
    if (when - now_millis).abs() > MAX_SKEW_MILLIS {
        return Err(Error::aws(
            ErrorKind::AccessDenied,
            "SignatureDoesNotMatch",
            format!(
                "Signature expired: {amz_date} is now earlier or later than the server time by more than 15 minutes"
            ),
        )
        .with_status(403));
    }
    if let Some(claimed) = request.header("x-amz-content-sha256")
        && claimed != "UNSIGNED-PAYLOAD"
        && !claimed
            .eq_ignore_ascii_case(&hex(digest::digest(&digest::SHA256, &request.body).as_ref()))
    {
        return Err(Error::aws(
            ErrorKind::AccessDenied,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
        .with_status(400));
    }
    let canonical = canonical_request(request, &auth.signed_headers)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let mut key_material = b"AWS4".to_vec();
    key_material.extend_from_slice(secret);
    let mut key = hmac_sign(&key_material, auth.date.as_bytes());
    for part in [auth.region, auth.service, "aws4_request"] {
        key = hmac_sign(&key, part.as_bytes());
    }
    let expected = hex(&hmac_sign(&key, string_to_sign.as_bytes()));
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(super::signature_mismatch())
    }
}

/// Checks that a signed request is the call being made with it: its credential scope names
/// `service`, and it carries `operation` and `input` (the JSON body with `X-Amz-Target` for
/// JSON-protocol services, the form or query parameters with `Action` for IAM and STS). A
/// signature proves one request; it must not authorize another.
pub(crate) fn check_binding(
    request: &SignedRequest,
    service: &str,
    operation: &str,
    input: &serde_json::Value,
) -> Result<()> {
    let mismatch = |why: &str| {
        Error::aws(
            ErrorKind::AccessDenied,
            "SignatureDoesNotMatch",
            format!("The signed request is not this call: {why}"),
        )
        .with_status(403)
    };
    let auth = parse_authorization(request)?;
    if auth.service != service {
        return Err(mismatch(&format!(
            "it is scoped to {}, not {service}",
            auth.service
        )));
    }
    let signed = |name: &str| {
        auth.signed_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    };
    if let Some(target) = request.header("x-amz-target") {
        if !signed("x-amz-target") {
            return Err(mismatch("X-Amz-Target is not among its signed headers"));
        }
        let named = target.rsplit('.').next().unwrap_or(target);
        if named != operation {
            return Err(mismatch(&format!("it targets {named}")));
        }
        let body: serde_json::Value = if request.body.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_slice(&request.body).map_err(|_| mismatch("its body is not JSON"))?
        };
        return if body == *input {
            Ok(())
        } else {
            Err(mismatch("its body is not the input"))
        };
    }
    let mut params: Vec<(String, String)> = form_pairs(&request.query);
    if request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
    {
        if !signed("content-type") {
            return Err(mismatch("Content-Type is not among its signed headers"));
        }
        params.extend(form_pairs(&String::from_utf8_lossy(&request.body)));
    }
    let action = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.as_str());
    if action != Some(operation) {
        return Err(mismatch(&format!(
            "its Action is {}",
            action.unwrap_or("missing")
        )));
    }
    params.retain(|(k, _)| k != "Action" && k != "Version");
    params.sort();
    let mut expected = Vec::new();
    if !flatten_query(input, "", &mut expected) {
        return Err(mismatch("its input cannot be written as query parameters"));
    }
    expected.sort();
    if params == expected {
        Ok(())
    } else {
        Err(mismatch("its parameters are not the input"))
    }
}

fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The AWS query protocol's flattening: `Tags.member.1.Key`, `PolicyArns.member.2.arn`.
/// False for input it cannot write unambiguously (names holding `.`, nulls, empty lists or
/// objects), which then cannot match a signed request.
fn flatten_query(value: &serde_json::Value, prefix: &str, out: &mut Vec<(String, String)>) -> bool {
    use serde_json::Value;
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };
    match value {
        Value::Object(map) => {
            (prefix.is_empty() || !map.is_empty())
                && map
                    .iter()
                    .all(|(k, v)| !k.contains('.') && flatten_query(v, &join(k), out))
        }
        Value::Array(items) => {
            !items.is_empty()
                && items
                    .iter()
                    .enumerate()
                    .all(|(i, v)| flatten_query(v, &join(&format!("member.{}", i + 1)), out))
        }
        Value::String(s) => {
            out.push((prefix.to_owned(), s.clone()));
            true
        }
        Value::Number(n) => {
            out.push((prefix.to_owned(), n.to_string()));
            true
        }
        Value::Bool(b) => {
            out.push((prefix.to_owned(), b.to_string()));
            true
        }
        Value::Null => false,
    }
}

fn hmac_sign(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    crate::id::hex(bytes)
}

/// `YYYYMMDD'T'HHMMSS'Z'` to milliseconds.
fn parse_amz_date(text: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(text, &format).ok()?;
    Some(t.assume_utc().unix_timestamp() * 1000)
}

/// The canonical request of AWS's SigV4 documentation.
fn canonical_request(request: &SignedRequest, signed_headers: &[&str]) -> Result<String> {
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(incomplete(&format!(
                "signed header {name} is missing from the request"
            )));
        }
        let _ = writeln!(headers, "{name}:{}", values.join(","));
    }
    let payload = match request.header("x-amz-content-sha256") {
        Some(hash) if hash != "UNSIGNED-PAYLOAD" => hash.to_owned(),
        _ => hex(digest::digest(&digest::SHA256, &request.body).as_ref()),
    };
    Ok(format!(
        "{}\n{}\n{}\n{headers}\n{}\n{payload}",
        request.method,
        canonical_uri(&request.path),
        canonical_query(&request.query),
        signed_headers.join(";"),
    ))
}

/// The normalized path, each byte outside the unreserved set percent-encoded (the path as sent
/// is already encoded once, so escapes are encoded again, as AWS does for non-S3 services).
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = format!("/{}", segments.join("/"));
    if path.ends_with('/') && normalized != "/" {
        normalized.push('/');
    }
    encode(&normalized, true)
}

/// The query parameters decoded, encoded strictly, and sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(&decode(k), false), encode(&decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let Some(v) = escaped {
            out.push(v);
            i += 3;
        } else {
            out.push(if b == b'+' { b' ' } else { b });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `get-vanilla-query-order-key-case` case of AWS's SigV4 test suite (credentials
    /// `AKIDEXAMPLE` / `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, us-east-1, service `service`).
    #[test]
    fn aws_test_suite_vector() {
        let headers = vec![
            ("Host".to_owned(), "example.amazonaws.com".to_owned()),
            ("X-Amz-Date".to_owned(), "20150830T123600Z".to_owned()),
            (
                "Authorization".to_owned(),
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500".to_owned(),
            ),
        ];
        let request = SignedRequest::new(
            "GET",
            "/",
            "Param2=value2&Param1=value1",
            headers,
            Vec::new(),
        );
        let auth = parse_authorization(&request).unwrap();
        let now = parse_amz_date("20150830T123600Z").unwrap();
        let secret = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        verify(&request, &auth, secret, "us-east-1", now).unwrap();
        assert_eq!(
            verify(&request, &auth, b"wrong", "us-east-1", now)
                .unwrap_err()
                .code(),
            "SignatureDoesNotMatch"
        );
        let late = now + 16 * 60 * 1000;
        assert!(
            verify(&request, &auth, secret, "us-east-1", late)
                .unwrap_err()
                .message()
                .contains("expired")
        );
    }

    #[test]
    fn bindings_need_signed_targets_and_plain_input() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=00".to_owned();
        let headers = vec![
            ("Host".to_owned(), "kms.amazonaws.com".to_owned()),
            ("X-Amz-Date".to_owned(), "20150830T123600Z".to_owned()),
            (
                "X-Amz-Target".to_owned(),
                "TrentService.ScheduleKeyDeletion".to_owned(),
            ),
            ("Authorization".to_owned(), auth),
        ];
        let request = SignedRequest::new("POST", "/", "", headers, b"{}".to_vec());
        let err = check_binding(
            &request,
            "kms",
            "ScheduleKeyDeletion",
            &serde_json::json!({}),
        )
        .unwrap_err();
        assert!(err.message().contains("X-Amz-Target"), "{err}");
        let mut out = Vec::new();
        assert!(!flatten_query(
            &serde_json::json!({"Tags.member.1.Key": "k"}),
            "",
            &mut out
        ));
        assert!(!flatten_query(
            &serde_json::json!({"Tags": []}),
            "",
            &mut out
        ));
        assert!(flatten_query(
            &serde_json::json!({"Tags": [{"Key": "k"}]}),
            "",
            &mut out
        ));
        assert_eq!(out, [("Tags.member.1.Key".to_owned(), "k".to_owned())]);
    }

    #[test]
    fn paths_normalize_and_encode_twice() {
        assert_eq!(canonical_uri("/example/../a/./b//c"), "/a/b/c");
        assert_eq!(canonical_uri("/a%20b"), "/a%2520b");
        assert_eq!(canonical_query("b=2&a=%2F&a=1"), "a=%2F&a=1&b=2");
    }
}
