//! Reading a request body within the limits: the size as sent, the
//! encoding, and the size after decompression (a gzip bomb stops at the
//! limit, it is never inflated in full).

use std::io::Read;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::BodyExt;
use tally_protocol::Limits;

use crate::error::ApiError;

/// The decompressed body of an ingest request.
pub(crate) async fn read(
    body: Body,
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<Vec<u8>, ApiError> {
    if let Some(kind) = header(headers, CONTENT_TYPE)
        && !kind.starts_with("application/json")
    {
        return Err(ApiError::Unsupported(format!(
            "Content-Type {kind:?} is not supported; send application/json"
        )));
    }
    let encoding = header(headers, CONTENT_ENCODING).unwrap_or("identity");
    if !matches!(encoding, "identity" | "gzip" | "zstd") {
        return Err(ApiError::Unsupported(format!(
            "Content-Encoding {encoding:?} is not supported; use gzip, zstd or none"
        )));
    }
    let too_large = || {
        ApiError::TooLarge(format!(
            "the body is over the limit of {} bytes",
            limits.max_body_bytes
        ))
    };
    if header(headers, CONTENT_LENGTH)
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| n > limits.max_body_bytes)
    {
        return Err(too_large());
    }
    let sent = http_body_util::Limited::new(body, limits.max_body_bytes)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ApiError::bad(
                    "unreadable_body",
                    "",
                    format!("the body could not be read: {e}"),
                )
            }
        })?
        .to_bytes();
    match encoding {
        // The body is in memory already: the decoders read it in place
        // rather than through a buffer of their own.
        "gzip" => inflate(
            flate2::bufread::MultiGzDecoder::new(&sent[..]),
            &sent,
            "gzip",
            limits,
        ),
        "zstd" => {
            let decoder = zstd::stream::read::Decoder::with_buffer(&sent[..])
                .map_err(|e| ApiError::bad("invalid_encoding", "", format!("zstd: {e}")))?;
            inflate(decoder, &sent, "zstd", limits)
        }
        _ => Ok(sent.to_vec()),
    }
}

fn inflate(
    decoder: impl Read,
    sent: &[u8],
    name: &str,
    limits: &Limits,
) -> Result<Vec<u8>, ApiError> {
    let max = limits.max_decoded_bytes;
    // Batches of JSON events compress about eightfold: room for that up
    // front spares the copies of a buffer grown by doubling.
    let mut out = Vec::with_capacity(sent.len().saturating_mul(8).min(max + 1));
    decoder
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::bad(
                "invalid_encoding",
                "",
                format!("the body is not valid {name}: {e}"),
            )
        })?;
    if out.len() > max {
        return Err(ApiError::TooLarge(format!(
            "the body decompresses to more than the limit of {max} bytes"
        )));
    }
    Ok(out)
}

fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}
