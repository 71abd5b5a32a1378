//! A buy's body, read whole before anything is forwarded. Streamed, a body that ends short of
//! its `Content-Length` (or runs past it, which HTTP/2 only notices at the end) would reach the
//! origin cut off, behind a head the origin already took; read first, it is checked — its
//! length, the limit, the time it takes — and then handed to the forward from Pingora's replay
//! buffer, in one piece. The same on HTTP/1.1 and HTTP/2. A buy without a body (the page's)
//! costs nothing here.

use pingora::proxy::Session;

use crate::config::HttpLimits;
use crate::ground::Outcome;

/// Read the body of the request in `session` (announced as `length` bytes) into the replay
/// buffer, within `limits.header_timeout`. The refusal when it is not exactly `length` bytes,
/// fails to arrive, or takes too long.
pub async fn read_whole(
    session: &mut Session,
    length: u64,
    limits: &HttpLimits,
) -> Result<(), Outcome> {
    session.as_mut().enable_retry_buffering();
    let reading = async {
        let mut read: u64 = 0;
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    read = read.saturating_add(chunk.len() as u64);
                    if read > length || read > limits.max_body_bytes {
                        return Err(Outcome::BadRequest);
                    }
                }
                Ok(None) => break,
                // A stream reset, a length HTTP/2 found wrong, a connection closed mid-body.
                Err(_) => return Err(Outcome::BadRequest),
            }
        }
        if read != length || session.as_ref().retry_buffer_truncated() {
            return Err(Outcome::BadRequest);
        }
        Ok(())
    };
    match tokio::time::timeout(limits.header_timeout, reading).await {
        Ok(done) => done,
        Err(_) => Err(Outcome::BadRequest),
    }
}
