//! Writing the edge's own answers onto a Pingora session: outcome JSON with its fixed status,
//! static files, scripts. Fixed bodies are `Bytes::from_static`; nothing here allocates a body.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::rate_headers::{jitter, RateHeaders, MAX_HEADERS};
use crate::admission::rate::RateLimited;
use crate::ground::Outcome;

/// Extra header pairs for an answer.
pub type Extra<'a> = &'a [(&'static str, &'a str)];

/// Write a complete response with `headers` and then `extra` headers.
pub async fn write(
    session: &mut Session,
    status: u16,
    headers: Extra<'_>,
    extra: Extra<'_>,
    body: Bytes,
) -> Result<()> {
    let head_only = session.req_header().method == http::Method::HEAD;
    let mut resp = ResponseHeader::build(status, Some(headers.len() + extra.len() + 1))?;
    resp.insert_header("content-length", body.len())?;
    for (name, value) in headers.iter().chain(extra) {
        resp.insert_header(*name, *value)?;
    }
    if head_only || body.is_empty() {
        session.write_response_header(Box::new(resp), true).await
    } else {
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await
    }
}

/// Answer with an outcome's status and JSON body.
pub async fn outcome(session: &mut Session, outcome: Outcome, extra: Extra<'_>) -> Result<()> {
    const JSON: Extra<'static> = &[
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
    ];
    write(
        session,
        super::answer::status(outcome),
        JSON,
        extra,
        Bytes::from_static(super::answer::body(outcome)),
    )
    .await
}

/// Answer `rate_limited` with `Retry-After` and the rate-limit headers `headers` asks for.
pub async fn rate_limited(
    session: &mut Session,
    limited: RateLimited,
    headers: &RateHeaders,
) -> Result<()> {
    let refusal = headers.refusal(&limited, jitter());
    let mut extra = [("", ""); MAX_HEADERS];
    let n = refusal.pairs(&mut extra);
    outcome(session, Outcome::RateLimited, &extra[..n]).await
}
