//! Reading a request body within the limits: the size as sent, the time it
//! takes to arrive, the encoding, and the size after decompression (a gzip
//! bomb stops at the limit, it is never inflated in full). Every byte kept
//! is held in the memory budget first, as it comes: a client that
//! announces a large body and sends little holds little.

use std::io::{Read, Write};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::BodyExt;
use tally_protocol::Limits;

use crate::budget::{Budget, Held};
use crate::error::ApiError;
use crate::listen::ConnectionLimits;

/// How a body was compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    /// zlib-wrapped deflate, as HTTP's `deflate` is (PostHog's clients).
    Deflate,
    Zstd,
}

/// A body as sent, with the bytes it holds in the budget.
pub(crate) struct Sent {
    pub(crate) bytes: Bytes,
    pub(crate) encoding: Encoding,
    pub(crate) held: Held,
}

/// Reads the body of an ingest request as sent, holding each byte in
/// `budget` as it arrives and refusing it if it does not arrive in
/// `timeout`.
pub(crate) async fn read(
    body: Body,
    headers: &HeaderMap,
    limits: &Limits,
    budget: &Budget,
    pace: &ConnectionLimits,
) -> Result<Sent, ApiError> {
    let timeout = pace.body_timeout;
    if let Some(kind) = header(headers, CONTENT_TYPE)
        && !kind.starts_with("application/json")
    {
        return Err(ApiError::Unsupported(format!(
            "Content-Type {kind:?} is not supported; send application/json"
        )));
    }
    let encoding = match header(headers, CONTENT_ENCODING).unwrap_or("identity") {
        "identity" => Encoding::Identity,
        "gzip" => Encoding::Gzip,
        "deflate" => Encoding::Deflate,
        "zstd" => Encoding::Zstd,
        other => {
            return Err(ApiError::Unsupported(format!(
                "Content-Encoding {other:?} is not supported; use gzip, deflate, zstd or none"
            )));
        }
    };
    let too_large = || {
        ApiError::TooLarge(format!(
            "the body is over the limit of {} bytes",
            limits.max_body_bytes
        ))
    };
    let length = header(headers, CONTENT_LENGTH).and_then(|n| n.parse::<usize>().ok());
    if length.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(too_large());
    }
    // Held as it arrives, not as announced: a client that announces a
    // megabyte and sends nothing holds nothing.
    let mut held = budget.hold(0)?;
    let reading = collect(body, limits.max_body_bytes, &mut held, pace);
    let bytes = tokio::time::timeout(timeout, reading)
        .await
        .map_err(|_| {
            ApiError::Timeout(format!(
                "the body did not arrive within {} seconds",
                timeout.as_secs()
            ))
        })?
        .map_err(|e| match e {
            Collect::TooLarge => too_large(),
            Collect::TooSlow => ApiError::Timeout(format!(
                "the body came slower than {} bytes a second",
                pace.min_body_bytes_per_second
            )),
            Collect::Busy(busy) => busy,
            Collect::Unreadable(e) => ApiError::bad(
                "unreadable_body",
                "",
                format!("the body could not be read: {e}"),
            ),
        })?;
    Ok(Sent {
        bytes: Bytes::from(bytes),
        encoding,
        held,
    })
}

/// Why a body could not be collected.
enum Collect {
    TooLarge,
    TooSlow,
    Busy(ApiError),
    Unreadable(axum::Error),
}

/// The body's bytes, up to `max`, each held in the budget before it is
/// kept (with the room its buffer has, as it grows). After the grace, they
/// must keep up the minimum rate: a client trickling bytes holds its place
/// and its buffer for seconds, not for the whole body timeout.
async fn collect(
    mut body: Body,
    max: usize,
    held: &mut Held,
    pace: &ConnectionLimits,
) -> Result<Vec<u8>, Collect> {
    let mut out = Growing::new(held, max);
    let started = tokio::time::Instant::now();
    let rate = f64::from(pace.min_body_bytes_per_second);
    loop {
        let next = body.frame();
        let frame = if rate > 0.0 {
            let owed = Duration::from_secs_f64((out.out.len() + 1) as f64 / rate);
            match tokio::time::timeout_at(started + pace.body_grace + owed, next).await {
                Ok(frame) => frame,
                Err(_) => return Err(Collect::TooSlow),
            }
        } else {
            next.await
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(Collect::Unreadable)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if out.out.len() + data.len() > max {
            return Err(Collect::TooLarge);
        }
        if out.write_all(&data).is_err() {
            return Err(Collect::Busy(
                out.busy
                    .take()
                    .unwrap_or(ApiError::Busy { retry_after_s: 1 }),
            ));
        }
    }
    Ok(out.out)
}

impl Sent {
    /// The body decompressed. Blocking work: call it off the async workers.
    /// The bytes it inflates are held in the budget as they come, so a bomb
    /// costs its limit only when the budget has room for it.
    pub(crate) fn decode(&mut self, limits: &Limits) -> Result<Bytes, ApiError> {
        // The body is in memory already: the decoders read it in place
        // rather than through a buffer of their own.
        let sent = &self.bytes[..];
        // Some clients gzip without saying so (PostHog's, with
        // `?compression=gzip-js`): no JSON starts with gzip's magic bytes.
        if self.encoding == Encoding::Identity && sent.starts_with(&[0x1f, 0x8b]) {
            self.encoding = Encoding::Gzip;
        }
        let inflated = match self.encoding {
            Encoding::Identity => return Ok(self.bytes.clone()),
            Encoding::Gzip => inflate(
                flate2::bufread::MultiGzDecoder::new(sent),
                "gzip",
                &mut self.held,
                limits,
            ),
            Encoding::Deflate => inflate(
                flate2::bufread::ZlibDecoder::new(sent),
                "deflate",
                &mut self.held,
                limits,
            ),
            Encoding::Zstd => {
                let zstd_error = |e| ApiError::bad("invalid_encoding", "", format!("zstd: {e}"));
                let mut decoder =
                    zstd::stream::read::Decoder::with_buffer(sent).map_err(zstd_error)?;
                // A frame may ask for a 128 MiB window, allocated uncounted:
                // no window larger than the decoded limit (8 MiB) is needed.
                decoder.window_log_max(23).map_err(zstd_error)?;
                inflate(decoder, "zstd", &mut self.held, limits)
            }
        };
        inflated.map(Bytes::from)
    }
}

fn inflate(
    decoder: impl Read,
    name: &str,
    held: &mut Held,
    limits: &Limits,
) -> Result<Vec<u8>, ApiError> {
    let max = limits.max_decoded_bytes;
    let mut out = Growing::new(held, max + 1);
    let copied = std::io::copy(&mut decoder.take(max as u64 + 1), &mut out);
    if let Some(busy) = out.busy {
        return Err(busy);
    }
    copied.map_err(|e| {
        ApiError::bad(
            "invalid_encoding",
            "",
            format!("the body is not valid {name}: {e}"),
        )
    })?;
    if out.out.len() > max {
        return Err(ApiError::TooLarge(format!(
            "the body decompresses to more than the limit of {max} bytes"
        )));
    }
    Ok(out.out)
}

/// A body (as sent, or inflated) growing its hold on the budget a step at
/// a time.
struct Growing<'a> {
    out: Vec<u8>,
    held: &'a mut Held,
    /// What was held before it (for an inflated body, the body as sent).
    base: usize,
    /// The most room it is given unasked (its size limit).
    limit: usize,
    /// Why growing stopped, when the budget had no room.
    busy: Option<ApiError>,
}

/// The first hold of a growing buffer, in bytes: small, as most bodies
/// are, and every open connection may hold one.
const STEP: usize = 16 * 1024;

impl<'a> Growing<'a> {
    /// An empty buffer that is never given more than `limit` bytes of
    /// room, held on top of what `held` holds already.
    fn new(held: &'a mut Held, limit: usize) -> Self {
        Self {
            out: Vec::new(),
            base: held.bytes(),
            held,
            limit,
            busy: None,
        }
    }

    /// Makes room for `capacity` bytes in all, held first.
    fn reserve_for(&mut self, capacity: usize) -> Result<(), ApiError> {
        if capacity > self.out.capacity() {
            self.held.resize(self.base + capacity)?;
            self.out.reserve_exact(capacity - self.out.len());
        }
        Ok(())
    }
}

impl Write for Growing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let need = self.out.len() + buf.len();
        if need > self.out.capacity() {
            // Doubling keeps the copies of a growing buffer linear in all.
            let capacity = (2 * self.out.capacity())
                .max(STEP)
                .min(self.limit)
                .max(need);
            if let Err(busy) = self.reserve_for(capacity) {
                self.busy = Some(busy);
                return Err(std::io::Error::other("no room in the memory budget"));
            }
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}
