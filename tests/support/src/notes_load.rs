//! A load of concurrent clients on the notes example
//! (`examples/notes`), written once for the serve test (which checks every
//! answer) and the serve benchmark (which times them).
//!
//! Each client is a thread with one keep-alive connection. It owns its notes
//! (`c{client}-n{i}`), so it knows what each must hold after every write it
//! saw acknowledged, and checks its own reads against that. Its requests,
//! drawn from a seeded generator:
//!
//! | share | request | expected |
//! |---|---|---|
//! | 30% | `PUT` one of its notes | `204` |
//! | 10% | `DELETE` one of its notes | `204` |
//! | 30% | `GET` one of its notes | `200` with the last value written, or `404` after a delete |
//! | 10% | `GET` another client's note | `200` or `404` |
//! | 15% | `POST /hits` (counted) | `200` `{"hits":N}` |
//! | 5% | `GET /notes` (first page) | `200` |

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::http::{HttpClient, HttpResponse};

#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub clients: usize,
    pub requests_per_client: usize,
    pub notes_per_client: usize,
    pub seed: u64,
}

impl LoadSpec {
    pub fn note_id(client: usize, note: usize) -> String {
        format!("c{client}-n{note}")
    }

    /// Every note of the load, with a value: what a store seeded before
    /// the load holds.
    pub fn seeded_notes(&self) -> Notes {
        (0..self.clients)
            .flat_map(|c| (0..self.notes_per_client).map(move |n| LoadSpec::note_id(c, n)))
            .map(|id| {
                let value = format!("seed of {id}").into_bytes();
                (id, Some(value))
            })
            .collect()
    }
}

/// Note id → value (`None`: absent).
pub type Notes = BTreeMap<String, Option<Vec<u8>>>;

/// What one client did and saw.
#[derive(Debug, Default)]
pub struct ClientLog {
    /// Its notes as its acknowledged writes left them (`None`: deleted or never written).
    pub notes: Notes,
    /// The counts `POST /hits` answered.
    pub hits: Vec<u64>,
    pub latencies: Vec<Duration>,
    /// Requests that failed: transport errors, unexpected statuses, malformed answers.
    pub failures: Vec<String>,
    /// Reads of its own notes that did not return its last acknowledged write.
    pub stale_reads: Vec<String>,
}

#[derive(Debug)]
pub struct LoadReport {
    pub clients: Vec<ClientLog>,
    /// From the moment all clients start to the moment the last one ends.
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn requests(&self) -> usize {
        self.clients.iter().map(|c| c.latencies.len()).sum()
    }

    pub fn failures(&self) -> Vec<&str> {
        self.clients
            .iter()
            .flat_map(|c| c.failures.iter().map(String::as_str))
            .collect()
    }

    pub fn stale_reads(&self) -> Vec<&str> {
        self.clients
            .iter()
            .flat_map(|c| c.stale_reads.iter().map(String::as_str))
            .collect()
    }

    /// Every count `POST /hits` answered, sorted.
    pub fn hits(&self) -> Vec<u64> {
        let mut hits: Vec<u64> = self.clients.iter().flat_map(|c| c.hits.iter().copied()).collect();
        hits.sort_unstable();
        hits
    }

    /// Every note as the acknowledged writes left it.
    pub fn notes(&self) -> Notes {
        self.clients.iter().flat_map(|c| c.notes.clone()).collect()
    }

    pub fn latencies(&self) -> impl Iterator<Item = Duration> + '_ {
        self.clients.iter().flat_map(|c| c.latencies.iter().copied())
    }
}

/// Runs the load against a notes service at `addr` whose notes hold
/// `initial` (a note not in it is absent).
pub fn run_load(addr: SocketAddr, spec: &LoadSpec, initial: &Notes) -> Result<LoadReport> {
    let start = Barrier::new(spec.clients + 1);
    let (clients, elapsed) = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..spec.clients)
            .map(|client| {
                let start = &start;
                scope.spawn(move || -> Result<ClientLog> {
                    let connection = HttpClient::connect(addr);
                    // Connected or not, every client waits here: none starts early.
                    start.wait();
                    run_client(&mut connection?, spec, client, initial)
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let logs: Result<Vec<ClientLog>> = threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| bail!("a client thread panicked")))
            .collect();
        (logs, began.elapsed())
    });
    Ok(LoadReport {
        clients: clients?,
        elapsed,
    })
}

/// xorshift64*: a seeded, reproducible sequence.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

fn run_client(http: &mut HttpClient, spec: &LoadSpec, client: usize, initial: &Notes) -> Result<ClientLog> {
    let mut rng = Rng((spec.seed ^ (client as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
    let mut log = ClientLog::default();
    for n in 0..spec.notes_per_client {
        let id = LoadSpec::note_id(client, n);
        let value = initial.get(&id).cloned().flatten();
        log.notes.insert(id, value);
    }
    for request in 0..spec.requests_per_client {
        let own = LoadSpec::note_id(client, rng.below(spec.notes_per_client));
        let roll = rng.below(100);
        let (method, path, body) = match roll {
            0..30 => {
                // ~100 bytes, different for every write.
                let value = format!(
                    "client {client} request {request} {}",
                    "x".repeat(60 + rng.below(40))
                );
                ("PUT", format!("/notes/{own}"), value.into_bytes())
            }
            30..40 => ("DELETE", format!("/notes/{own}"), Vec::new()),
            40..70 => ("GET", format!("/notes/{own}"), Vec::new()),
            70..80 => {
                let other = LoadSpec::note_id(rng.below(spec.clients), rng.below(spec.notes_per_client));
                ("GET", format!("/notes/{other}"), Vec::new())
            }
            80..95 => ("POST", "/hits".to_string(), Vec::new()),
            _ => ("GET", "/notes".to_string(), Vec::new()),
        };
        let began = Instant::now();
        let response = http.request(method, &path, &body);
        log.latencies.push(began.elapsed());
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                log.failures.push(format!("{e:#}"));
                continue;
            }
        };
        let unexpected = |response: &HttpResponse| {
            format!(
                "{method} {path}: unexpected {} {}",
                response.status,
                response.text()
            )
        };
        match (roll, response.status) {
            (0..30, 204) => {
                log.notes.insert(own, Some(body));
            }
            (30..40, 204) => {
                log.notes.insert(own, None);
            }
            (40..70, 200 | 404) => {
                let got = (response.status == 200).then_some(&response.body);
                if got != log.notes[&own].as_ref() {
                    log.stale_reads.push(format!(
                        "GET {path}: {} {:?}, but the last acknowledged write left {:?}",
                        response.status,
                        response.text(),
                        log.notes[&own].as_deref().map(String::from_utf8_lossy)
                    ));
                }
            }
            (70..80, 200 | 404) | (95.., 200) => {}
            (80..95, 200) => match parse_hits(&response.body) {
                Ok(hits) => log.hits.push(hits),
                Err(e) => log.failures.push(format!("POST /hits: {e:#}")),
            },
            _ => log.failures.push(unexpected(&response)),
        }
    }
    Ok(log)
}

/// The count of a `{"hits":N}` answer.
pub fn parse_hits(body: &[u8]) -> Result<u64> {
    let json: serde_json::Value = serde_json::from_slice(body).context("the answer is not JSON")?;
    json["hits"]
        .as_u64()
        .with_context(|| format!("no count in {json}"))
}
