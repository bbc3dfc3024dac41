//! The one request layer every protocol uses: sends a request through
//! `wasi:http/outgoing-handler` within the operation's deadline, retries
//! transient failures with exponential backoff and full jitter, and turns
//! every failure into one clear `other("<service>: …")` message.
//!
//! Retry rules: connection errors, 5xx, 429 and a protocol's own throttling
//! answers (DynamoDB throttles with a 400) are retried; other 4xx never.
//! A request whose effect must not be applied twice (an increment, a
//! compare-and-swap) is retried only when the failure proves it was not
//! applied: the connection was never made, or the service answered 429, 503
//! or a throttling answer.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use kv_core::config::{Endpoint, RetryPolicy};
use kv_core::{Error, Quoted, Result};
use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, HeaderError, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::poll::{Pollable, poll};
use wasip2::io::streams::StreamError;

/// The most a response body may hold (list pages and batch reads included).
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// The most requests [`Client::send_all`] has in flight at once: enough to
/// hide a cloud service's round trip, few enough not to look like a flood.
pub const MAX_IN_FLIGHT: usize = 16;

/// Whether a request may be sent again after a failure that leaves its
/// outcome unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotence {
    /// Applying it twice is the same as once (reads, puts, deletes).
    Idempotent,
    /// It must not be applied twice (increments, compare-and-swaps).
    Once,
}

/// One HTTP request, relative to the configured endpoint.
pub struct Request {
    pub method: Method,
    /// Path and query, already percent-encoded, appended to the endpoint's path.
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub idempotence: Idempotence,
    /// Whether a response says the service throttled the request (which
    /// it then did not apply), beyond the 429 and 503 every service uses.
    pub throttled: fn(&Response) -> bool,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            idempotence: Idempotence::Idempotent,
            throttled: |_| false,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn once(mut self) -> Self {
        self.idempotence = Idempotence::Once;
        self
    }

    pub fn throttled_when(mut self, throttled: fn(&Response) -> bool) -> Self {
        self.throttled = throttled;
        self
    }
}

/// A complete response: any status (the protocol decides what is success).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header of that name (case-insensitive), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| core::str::from_utf8(v).ok())
    }

    /// The body as text for a message: lossy, trimmed, at most 300 characters.
    pub fn body_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        match text.char_indices().nth(300) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.into(),
        }
    }
}

/// Sends requests to one service for one protocol.
pub struct Client {
    /// The protocol's name, first word of every message ("etcd").
    service: &'static str,
    endpoint: Endpoint,
    timeout_ns: u64,
    retry: RetryPolicy,
    host: Host,
}

/// Where requests go and the clock and randomness come from: the runtime
/// (`wasi:http`, `wasi:clocks`, `wasi:random`), or, in native unit tests,
/// canned answers (see `crate::testing`), so that every protocol's
/// handling of answers runs natively.
enum Host {
    Wasi,
    #[cfg(test)]
    Canned(crate::testing::Answers),
}

/// Why one attempt failed.
enum Failure {
    /// The connection was never made: the request was certainly not applied.
    NotSent(String),
    /// The request may or may not have reached the service.
    Unknown(String),
    /// The operation's deadline passed.
    TimedOut,
}

impl Client {
    pub fn new(service: &'static str, endpoint: Endpoint, timeout_ms: u32, retry: RetryPolicy) -> Self {
        Client {
            service,
            endpoint,
            timeout_ns: u64::from(timeout_ms) * 1_000_000,
            retry,
            host: Host::Wasi,
        }
    }

    /// A client whose requests `answers` answers (native unit tests).
    #[cfg(test)]
    pub fn canned(service: &'static str, answers: crate::testing::Answers) -> Self {
        Client {
            host: Host::Canned(answers),
            ..Client::new(
                service,
                Endpoint::parse("http://127.0.0.1:1").unwrap(),
                1,
                RetryPolicy::default(),
            )
        }
    }

    /// The time, in seconds since the Unix epoch (for request signatures).
    pub fn unix_seconds(&self) -> u64 {
        match &self.host {
            Host::Wasi => wasip2::clocks::wall_clock::now().seconds,
            #[cfg(test)]
            Host::Canned(_) => 1_795_279_386,
        }
    }

    /// The time, in milliseconds since the Unix epoch: what expiries are
    /// in (the adapter's one wall clock, so canned tests can set it).
    pub fn unix_ms(&self) -> u64 {
        match &self.host {
            Host::Wasi => kv_glue::wall_clock_ms(),
            #[cfg(test)]
            Host::Canned(answers) => answers.now_ms(),
        }
    }

    /// A random number (versions, batch boundaries).
    pub fn random_u64(&self) -> u64 {
        match &self.host {
            Host::Wasi => wasip2::random::random::get_random_u64(),
            #[cfg(test)]
            Host::Canned(answers) => answers.random_u64(),
        }
    }

    /// Waits `ms` milliseconds (a backoff outside [`Client::send`]'s own).
    pub fn sleep_ms(&self, ms: u64) {
        match &self.host {
            Host::Wasi => monotonic_clock::subscribe_duration(ms * 1_000_000).block(),
            #[cfg(test)]
            Host::Canned(_) => {}
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `other("<service>: <what>")`.
    pub fn error(&self, what: impl fmt::Display) -> Error {
        Error::other(format!("{}: {what}", self.service))
    }

    /// `other("<service>: <status> <service's message>")` for a response
    /// the protocol does not accept.
    pub fn status_error(&self, response: &Response, message: &str) -> Error {
        let message = if message.is_empty() {
            reason(response.status)
        } else {
            message
        };
        self.error(format_args!("{} {message}", response.status))
    }

    /// A response that is not what the protocol expects (not JSON, a field
    /// missing): never a trap.
    pub fn malformed(&self, what: impl fmt::Display, response: &Response) -> Error {
        self.error(format_args!(
            "unexpected response from {} ({what}): {} {}",
            self.endpoint,
            response.status,
            Quoted(&response.body_text())
        ))
    }

    /// Sends `request`, retrying transient failures within the deadline.
    /// Returns the last response whatever its status; fails only when no
    /// response could be had.
    pub fn send(&self, request: &Request) -> Result<Response> {
        match &self.host {
            Host::Wasi => self.send_by(request, self.deadline(), None),
            #[cfg(test)]
            Host::Canned(answers) => answers.answer(request),
        }
    }

    /// Sends independent requests at once (at most [`MAX_IN_FLIGHT`] in
    /// flight), each with [`Client::send`]'s retry rules and deadline
    /// (counted from when it starts): the service works on them in parallel
    /// instead of one round trip after another. The results are in
    /// `requests`' order.
    pub fn send_all(&self, requests: &[Request]) -> Vec<Result<Response>> {
        #[cfg(test)]
        if let Host::Canned(answers) = &self.host {
            return requests.iter().map(|request| answers.answer(request)).collect();
        }
        let first_attempts = self.attempt_all(requests);
        // Retries, rare, are made one request at a time.
        requests
            .iter()
            .zip(first_attempts)
            .map(|(request, (first, deadline))| self.send_by(request, deadline, Some(first)))
            .collect()
    }

    fn deadline(&self) -> u64 {
        monotonic_clock::now().saturating_add(self.timeout_ns)
    }

    /// [`Client::send`], within `deadline`, starting from the outcome of a
    /// `first` attempt if one was already made.
    fn send_by(
        &self,
        request: &Request,
        deadline: u64,
        mut first: Option<Result<Response, Failure>>,
    ) -> Result<Response> {
        let attempts = |n: u32| {
            if n == 1 {
                "1 attempt".to_string()
            } else {
                format!("{n} attempts")
            }
        };
        let mut attempt = 1;
        loop {
            let result = first.take().unwrap_or_else(|| self.attempt(request, deadline));
            // What the caller gets if this is the last attempt.
            let outcome: Result<Response, String> = match result {
                Ok(response) if !may_retry(request, &response) => return Ok(response),
                Ok(response) => Ok(response),
                Err(Failure::TimedOut) => {
                    return Err(self.error(format_args!(
                        "no response from {} within {} ms ({})",
                        self.endpoint,
                        self.timeout_ns / 1_000_000,
                        attempts(attempt)
                    )));
                }
                Err(Failure::Unknown(why)) if request.idempotence == Idempotence::Once => {
                    return Err(self.error(format_args!(
                        "{why} talking to {}; the request may or may not have been applied, \
                         so it was not retried",
                        self.endpoint
                    )));
                }
                Err(Failure::NotSent(why) | Failure::Unknown(why)) => Err(why),
            };
            let backoff = self.backoff_ns(attempt);
            if attempt >= self.retry.max_attempts
                || monotonic_clock::now().saturating_add(backoff) >= deadline
            {
                return outcome.map_err(|why| {
                    self.error(format_args!(
                        "cannot reach {}: {why} ({})",
                        self.endpoint,
                        attempts(attempt)
                    ))
                });
            }
            monotonic_clock::subscribe_duration(backoff).block();
            attempt += 1;
        }
    }

    /// Full jitter: a uniformly random wait up to the exponential backoff.
    fn backoff_ns(&self, attempt: u32) -> u64 {
        let initial = u64::from(self.retry.initial_backoff_ms) * 1_000_000;
        let cap = u64::from(self.retry.max_backoff_ms) * 1_000_000;
        let ceiling = initial.saturating_mul(1 << (attempt - 1).min(30)).min(cap);
        if ceiling == 0 {
            return 0;
        }
        wasip2::random::random::get_random_u64() % (ceiling + 1)
    }

    fn attempt(&self, request: &Request, deadline: u64) -> Result<Response, Failure> {
        let future = self.start(request, deadline)?;
        receive(&future, deadline)
    }

    /// One attempt of each request, at most [`MAX_IN_FLIGHT`] at a time (a
    /// request starts as soon as another's response has been read), with
    /// the deadline each got when it started.
    fn attempt_all(&self, requests: &[Request]) -> Vec<(Result<Response, Failure>, u64)> {
        let mut outcomes: Vec<Option<(Result<Response, Failure>, u64)>> =
            requests.iter().map(|_| None).collect();
        let mut in_flight: Vec<(usize, FutureIncomingResponse, u64)> = Vec::new();
        let mut next = 0;
        loop {
            while in_flight.len() < MAX_IN_FLIGHT && next < requests.len() {
                let deadline = self.deadline();
                match self.start(&requests[next], deadline) {
                    Ok(future) => in_flight.push((next, future, deadline)),
                    Err(failure) => outcomes[next] = Some((Err(failure), deadline)),
                }
                next += 1;
            }
            let Some(soonest) = in_flight.iter().map(|&(_, _, deadline)| deadline).min() else {
                break;
            };
            let ready = {
                // Dropped before their futures are: they are the futures' children.
                let pollables: Vec<Pollable> = in_flight
                    .iter()
                    .map(|(_, future, _)| future.subscribe())
                    .collect();
                let timer = monotonic_clock::subscribe_instant(soonest);
                let mut all: Vec<&Pollable> = pollables.iter().collect();
                all.push(&timer);
                // Which requests are ready, by index (a mask: no sort).
                let mut ready = vec![false; in_flight.len()];
                for i in poll(&all) {
                    if let Some(is_ready) = ready.get_mut(i as usize) {
                        *is_ready = true;
                    }
                }
                if !ready.contains(&true) {
                    // A deadline passed: those requests get no more time.
                    let now = monotonic_clock::now();
                    for (is_ready, (_, _, deadline)) in ready.iter_mut().zip(&in_flight) {
                        *is_ready = *deadline <= now;
                    }
                }
                ready
            };
            // From the back, so that the indices left are still right.
            for slot in (0..ready.len()).rev().filter(|&slot| ready[slot]) {
                let (index, future, deadline) = in_flight.swap_remove(slot);
                // A future not ready yet waits no longer than its deadline.
                outcomes[index] = Some((receive(&future, deadline), deadline));
            }
        }
        // Every request was started, then answered or timed out.
        outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or((Err(Failure::TimedOut), 0)))
            .collect()
    }

    /// Sends the request line, headers and body; the response is to come.
    fn start(&self, request: &Request, deadline: u64) -> Result<FutureIncomingResponse, Failure> {
        let outgoing = self.outgoing(request).map_err(Failure::NotSent)?;
        let body = outgoing
            .body()
            .map_err(|()| Failure::NotSent("request body taken twice".into()))?;
        let future = outgoing_handler::handle(outgoing, Some(self.options(deadline)))
            .map_err(|code| classify(&code))?;
        let sent = write_body(&body, &request.body, deadline)
            .and_then(|()| OutgoingBody::finish(body, None).map_err(|code| classify(&code)));
        if let Err(failure) = sent {
            // The body stream only says "closed"; the response says why
            // (a refused connection is not an ambiguous failure).
            return Err(match wait_response(&future, deadline) {
                Err(cause @ (Failure::NotSent(_) | Failure::Unknown(_))) => cause,
                _ => failure,
            });
        }
        Ok(future)
    }

    fn outgoing(&self, request: &Request) -> Result<OutgoingRequest, String> {
        let mut headers = request.headers.clone();
        headers.push((
            "content-length".into(),
            request.body.len().to_string().into_bytes(),
        ));
        let fields = Fields::from_list(&headers).map_err(|e| {
            let why = match e {
                HeaderError::InvalidSyntax => "invalid syntax",
                HeaderError::Forbidden => "forbidden",
                HeaderError::Immutable => "immutable",
            };
            format!("invalid request header: {why}")
        })?;
        let outgoing = OutgoingRequest::new(fields);
        let scheme = if self.endpoint.is_https() {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let path = self.endpoint.full_path(&request.path);
        outgoing
            .set_method(&request.method)
            .and(outgoing.set_scheme(Some(&scheme)))
            .and(outgoing.set_authority(Some(self.endpoint.authority())))
            .and(outgoing.set_path_with_query(Some(&path)))
            .map_err(|()| format!("the runtime refused the request line for {}", Quoted(&path)))?;
        Ok(outgoing)
    }

    /// Per-phase timeouts for the runtime, all bounded by what is left.
    fn options(&self, deadline: u64) -> RequestOptions {
        let left = deadline.saturating_sub(monotonic_clock::now()).max(1);
        let options = RequestOptions::new();
        // A runtime may not support some of them; the deadline below still holds.
        let _ = options.set_connect_timeout(Some(left));
        let _ = options.set_first_byte_timeout(Some(left));
        let _ = options.set_between_bytes_timeout(Some(left));
        options
    }
}

/// Whether a response is worth another attempt: 5xx, 429 and throttling
/// answers are transient, but of those only 429, 503 and throttling say the
/// request was not applied, which a request that must not apply twice needs.
fn may_retry(request: &Request, response: &Response) -> bool {
    let not_applied = response.status == 429 || response.status == 503 || (request.throttled)(response);
    match request.idempotence {
        Idempotence::Idempotent => not_applied || response.status >= 500,
        Idempotence::Once => not_applied,
    }
}

/// Waits until `pollable` is ready or the deadline passes (`false`).
fn wait_until(pollable: &Pollable, deadline: u64) -> bool {
    if pollable.ready() {
        return true;
    }
    let timer = monotonic_clock::subscribe_instant(deadline);
    poll(&[pollable, &timer]).contains(&0)
}

fn write_body(body: &OutgoingBody, mut bytes: &[u8], deadline: u64) -> Result<(), Failure> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body
        .write()
        .map_err(|()| Failure::NotSent("request body stream taken twice".into()))?;
    let broken = |e: StreamError| match e {
        StreamError::LastOperationFailed(e) => Failure::Unknown(format!(
            "sending the request body failed: {}",
            e.to_debug_string()
        )),
        StreamError::Closed => Failure::Unknown("the connection closed while sending the request".into()),
    };
    while !bytes.is_empty() {
        let room = stream.check_write().map_err(broken)?;
        if room == 0 {
            if !wait_until(&stream.subscribe(), deadline) {
                return Err(Failure::TimedOut);
            }
            continue;
        }
        let n = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        stream.write(&bytes[..n]).map_err(broken)?;
        bytes = &bytes[n..];
    }
    // Wait for the flush so that errors surface here, not as a lost body.
    // A stream closed now means the runtime has the whole body (it closes
    // it once `content-length` bytes are in).
    match stream.flush() {
        Ok(()) => {}
        Err(StreamError::Closed) => return Ok(()),
        Err(e) => return Err(broken(e)),
    }
    loop {
        match stream.check_write() {
            Ok(0) => {
                if !wait_until(&stream.subscribe(), deadline) {
                    return Err(Failure::TimedOut);
                }
            }
            Ok(_) | Err(StreamError::Closed) => return Ok(()),
            Err(e) => return Err(broken(e)),
        }
    }
}

/// The whole response to a started request.
fn receive(future: &FutureIncomingResponse, deadline: u64) -> Result<Response, Failure> {
    let response = wait_response(future, deadline)?;
    read_response(response, deadline)
}

fn wait_response(future: &FutureIncomingResponse, deadline: u64) -> Result<IncomingResponse, Failure> {
    if !wait_until(&future.subscribe(), deadline) {
        return Err(Failure::TimedOut);
    }
    match future.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(code))) => Err(classify(&code)),
        Some(Err(())) | None => Err(Failure::Unknown("the runtime lost the response".into())),
    }
}

fn read_response(response: IncomingResponse, deadline: u64) -> Result<Response, Failure> {
    let status = response.status();
    let headers = response.headers().entries();
    let body = response
        .consume()
        .map_err(|()| Failure::Unknown("response body taken twice".into()))?;
    let stream = body
        .stream()
        .map_err(|()| Failure::Unknown("response body stream taken twice".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.read(64 * 1024) {
            Ok(chunk) if chunk.is_empty() => {
                if !wait_until(&stream.subscribe(), deadline) {
                    return Err(Failure::TimedOut);
                }
            }
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_RESPONSE_BYTES {
                    return Err(Failure::Unknown(format!(
                        "the response body is over {} MiB",
                        MAX_RESPONSE_BYTES >> 20
                    )));
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Failure::Unknown(format!(
                    "reading the response body failed: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    // The stream is a child of the body: drop it first.
    drop(stream);
    drop(body);
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

/// Sorts the runtime's error codes into "never sent" and "outcome unknown".
fn classify(code: &ErrorCode) -> Failure {
    let text = describe(code);
    match code {
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_)
        | ErrorCode::HttpRequestDenied
        | ErrorCode::HttpRequestUriInvalid
        | ErrorCode::HttpRequestMethodInvalid
        | ErrorCode::ConfigurationError => Failure::NotSent(text),
        _ => Failure::Unknown(text),
    }
}

fn describe(code: &ErrorCode) -> String {
    match code {
        ErrorCode::ConnectionRefused => "connection refused".into(),
        ErrorCode::ConnectionTimeout => "connection timed out".into(),
        ErrorCode::ConnectionTerminated => "connection closed by the server".into(),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => "response timed out".into(),
        ErrorCode::DnsError(payload) => format!(
            "DNS lookup failed ({})",
            payload.rcode.as_deref().unwrap_or("no answer")
        ),
        ErrorCode::DestinationNotFound => "host not found".into(),
        ErrorCode::HttpProtocolError => "the server's answer is not valid HTTP".into(),
        ErrorCode::HttpResponseIncomplete => "the server's answer was cut short".into(),
        ErrorCode::InternalError(Some(message)) => format!("runtime error: {message}"),
        other => format!("wasi:http error-code {}", case_name(other)),
    }
}

/// The WIT name of an error code's case (its `Debug`, with its payload,
/// would add kilobytes of formatting code to the adapter).
fn case_name(code: &ErrorCode) -> &'static str {
    match code {
        ErrorCode::DnsTimeout => "DNS-timeout",
        ErrorCode::DnsError(_) => "DNS-error",
        ErrorCode::DestinationNotFound => "destination-not-found",
        ErrorCode::DestinationUnavailable => "destination-unavailable",
        ErrorCode::DestinationIpProhibited => "destination-IP-prohibited",
        ErrorCode::DestinationIpUnroutable => "destination-IP-unroutable",
        ErrorCode::ConnectionRefused => "connection-refused",
        ErrorCode::ConnectionTerminated => "connection-terminated",
        ErrorCode::ConnectionTimeout => "connection-timeout",
        ErrorCode::ConnectionReadTimeout => "connection-read-timeout",
        ErrorCode::ConnectionWriteTimeout => "connection-write-timeout",
        ErrorCode::ConnectionLimitReached => "connection-limit-reached",
        ErrorCode::TlsProtocolError => "TLS-protocol-error",
        ErrorCode::TlsCertificateError => "TLS-certificate-error",
        ErrorCode::TlsAlertReceived(_) => "TLS-alert-received",
        ErrorCode::HttpRequestDenied => "HTTP-request-denied",
        ErrorCode::HttpRequestLengthRequired => "HTTP-request-length-required",
        ErrorCode::HttpRequestBodySize(_) => "HTTP-request-body-size",
        ErrorCode::HttpRequestMethodInvalid => "HTTP-request-method-invalid",
        ErrorCode::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
        ErrorCode::HttpRequestUriTooLong => "HTTP-request-URI-too-long",
        ErrorCode::HttpRequestHeaderSectionSize(_) => "HTTP-request-header-section-size",
        ErrorCode::HttpRequestHeaderSize(_) => "HTTP-request-header-size",
        ErrorCode::HttpRequestTrailerSectionSize(_) => "HTTP-request-trailer-section-size",
        ErrorCode::HttpRequestTrailerSize(_) => "HTTP-request-trailer-size",
        ErrorCode::HttpResponseIncomplete => "HTTP-response-incomplete",
        ErrorCode::HttpResponseHeaderSectionSize(_) => "HTTP-response-header-section-size",
        ErrorCode::HttpResponseHeaderSize(_) => "HTTP-response-header-size",
        ErrorCode::HttpResponseBodySize(_) => "HTTP-response-body-size",
        ErrorCode::HttpResponseTrailerSectionSize(_) => "HTTP-response-trailer-section-size",
        ErrorCode::HttpResponseTrailerSize(_) => "HTTP-response-trailer-size",
        ErrorCode::HttpResponseTransferCoding(_) => "HTTP-response-transfer-coding",
        ErrorCode::HttpResponseContentCoding(_) => "HTTP-response-content-coding",
        ErrorCode::HttpResponseTimeout => "HTTP-response-timeout",
        ErrorCode::HttpUpgradeFailed => "HTTP-upgrade-failed",
        ErrorCode::HttpProtocolError => "HTTP-protocol-error",
        ErrorCode::LoopDetected => "loop-detected",
        ErrorCode::ConfigurationError => "configuration-error",
        ErrorCode::InternalError(_) => "internal-error",
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// A method's name as sent and signed (SigV4, SharedKey).
pub fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Patch => "PATCH",
        Method::Options => "OPTIONS",
        Method::Connect => "CONNECT",
        Method::Trace => "TRACE",
        Method::Other(name) => name,
    }
}

/// Percent-encodes everything but ASCII letters, digits, `-`, `_` and `~`
/// (so also `.`, which webdis would read as a format suffix): any key is
/// then one path segment or query value.
pub fn percent_encode(bytes: &[u8]) -> String {
    kv_core::percent::encode(bytes, |c| c != '.' && kv_core::percent::is_unreserved(c))
}
