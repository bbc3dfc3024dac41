//! Native tests of every protocol's handling of answers: a client that
//! answers requests from a script ([`Answers`]), every bucket operation
//! ([`Op`]), and the property each protocol must have ([`check_protocol`]):
//! whatever comes back (any status, headers and bytes; a real answer cut
//! short or with a field of the wrong type), an operation returns `Ok` or a
//! one-line `other(..)` error. It never panics: a panic in an adapter is a
//! trap for the app.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::string::ToString;
use std::vec::Vec;
use std::{format, vec};

use kv_core::{Bucket, CounterRange, Error, ListRequest, Result, Version};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use crate::client::{Client, Request, Response};
use crate::credentials::Credentials;
use kv_core::config::Secret;
use std::string::String;

/// The answers of a canned client, in order. Once they run out, a request
/// fails as if the service had gone away.
#[derive(Clone, Default)]
pub struct Answers {
    left: Rc<RefCell<VecDeque<Response>>>,
    random: Rc<Cell<u64>>,
    /// The requests answered so far: path and body (as text).
    asked: Rc<RefCell<Vec<(String, String)>>>,
    /// The wall clock a canned client reads, in ms (settable).
    now_ms: Rc<Cell<u64>>,
}

/// The canned clients' wall clock unless a test sets it: the time their
/// signatures are made at, in ms.
pub const CANNED_NOW_MS: u64 = 1_795_279_386_000;

impl Answers {
    pub fn new(answers: Vec<Response>) -> Self {
        Answers {
            left: Rc::new(RefCell::new(answers.into())),
            random: Rc::default(),
            asked: Rc::default(),
            now_ms: Rc::new(Cell::new(CANNED_NOW_MS)),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    /// Sets the canned wall clock (ms since the Unix epoch).
    pub fn set_now_ms(&self, now_ms: u64) {
        self.now_ms.set(now_ms);
    }

    pub fn answer(&self, request: &Request) -> Result<Response> {
        self.asked.borrow_mut().push((
            request.path.clone(),
            String::from_utf8_lossy(&request.body).into_owned(),
        ));
        self.left
            .borrow_mut()
            .pop_front()
            .ok_or_else(|| Error::other("test: the service has no answer left"))
    }

    pub fn random_u64(&self) -> u64 {
        self.random.set(self.random.get() + 1);
        self.random.get()
    }

    pub fn left(&self) -> usize {
        self.left.borrow().len()
    }

    /// The requests answered so far (path, body as text), in order.
    pub fn asked(&self) -> Vec<(String, String)> {
        self.asked.borrow().clone()
    }
}

/// An answer with a status, headers and a body.
pub fn answer(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Response {
    Response {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect(),
        body: body.into(),
    }
}

/// A `200 OK` with a JSON body.
pub fn json(body: &str) -> Response {
    answer(200, &[("content-type", "application/json")], body)
}

/// Every operation of a bucket, as the tests call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    GetVersioned,
    Set,
    Delete,
    Exists,
    ListFirst,
    ListAfter,
    CasInsert,
    CasReplace,
    Increment,
    GetMany,
    SetMany,
    DeleteMany,
}

pub const OPS: [Op; 13] = [
    Op::Get,
    Op::GetVersioned,
    Op::Set,
    Op::Delete,
    Op::Exists,
    Op::ListFirst,
    Op::ListAfter,
    Op::CasInsert,
    Op::CasReplace,
    Op::Increment,
    Op::GetMany,
    Op::SetMany,
    Op::DeleteMany,
];

/// The expiry the writes of [`check_protocol_expiring`] give: a minute
/// after the canned clients' time.
pub const EXPIRES_AT: u64 = 1_795_279_446_000;

impl Op {
    /// Runs the operation on keys `a` and `b`; `version` is one the
    /// protocol issues (for a compare-and-swap of a present key); writes
    /// expire at `expires_at`.
    fn run(self, bucket: &dyn Bucket, version: &[u8], expires_at: Option<u64>) -> Result<()> {
        let keys = ["a".to_string(), "b".to_string()];
        let entries = [("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())];
        let list = |after| {
            bucket.list_keys(ListRequest {
                after,
                max_keys: 10,
                prefix: "",
            })
        };
        match self {
            Op::Get => bucket.get("a").map(drop),
            Op::GetVersioned => bucket.get_versioned("a").map(drop),
            Op::Set => bucket.set("a", b"value", expires_at),
            Op::Delete => bucket.delete("a"),
            Op::Exists => bucket.exists("a").map(drop),
            Op::ListFirst => list(None).map(drop),
            Op::ListAfter => list(Some("a")).map(drop),
            Op::CasInsert => bucket.compare_and_swap("a", None, b"new", expires_at).map(drop),
            Op::CasReplace => bucket
                .compare_and_swap("a", Some(&Version(version.to_vec())), b"new", expires_at)
                .map(drop),
            Op::Increment => bucket.increment("a", 1, CounterRange::S64, expires_at).map(drop),
            Op::GetMany => bucket.get_many(&keys).map(drop),
            Op::SetMany => bucket.set_many(&entries, expires_at),
            Op::DeleteMany => bucket.delete_many(&keys),
        }
    }
}

/// An if-not-exists insert (expiring) on a bucket answering `answers`
/// writes, reading every answer (over an expired entry, say).
pub fn assert_if_not_exists_writes(open: fn(Answers) -> Box<dyn Bucket>, answers: Vec<Response>) {
    let answers = Answers::new(answers);
    let bucket = open(answers.clone());
    let expires_at = Some(answers.now_ms() + 1000);
    assert_eq!(bucket.compare_and_swap("a", None, b"new", expires_at), Ok(true));
    assert_eq!(answers.left(), 0, "answers left");
}

/// A protocol under test.
struct Protocol {
    /// A bucket (prefix `b/`) of the protocol on a client answering `answers`.
    open: fn(Answers) -> Box<dyn Bucket>,
    /// The answers the real service gives to the operation, in order: the
    /// operation succeeds on them (the first check proves it).
    script: fn(Op) -> Vec<Response>,
    /// A version of a key, as the protocol's `get_versioned` returns it.
    version: &'static [u8],
    /// The response headers the protocol reads.
    headers: &'static [&'static str],
    /// When the writes expire.
    expires_at: Option<u64>,
}

/// AWS credentials for the canned DynamoDB and S3 clients.
pub const AWS_CREDENTIALS: &[(&str, &str)] =
    &[("access-key-id", "AKIDEXAMPLE"), ("secret-access-key", "secret")];

/// A client of `service` answering `answers`, and the `credentials` (name,
/// value) baked.
pub fn canned(
    service: &'static str,
    answers: Answers,
    credentials: &[(&str, &str)],
) -> (Rc<Client>, Credentials) {
    let credentials: Vec<(String, Secret)> = credentials
        .iter()
        .map(|(name, value)| (name.to_string(), Secret::Baked(value.to_string())))
        .collect();
    (
        Rc::new(Client::canned(service, answers)),
        Credentials::new(service, &credentials),
    )
}

/// Checks all of a protocol's answer handling (see the module's doc): its
/// real answers (`script`) succeed, any answers (a property test) and every
/// mutation of the real ones (all of them, in turn) give `ok` or a one-line
/// `other(..)`. `open` makes a bucket (prefix `b/`) on a client answering
/// what it is given; `version` is a version as the protocol's
/// `get_versioned` gives it; `headers` are the response headers it reads.
pub fn check_protocol(
    open: fn(Answers) -> Box<dyn Bucket>,
    script: fn(Op) -> Vec<Response>,
    version: &'static [u8],
    headers: &'static [&'static str],
) {
    check(&Protocol {
        open,
        script,
        version,
        headers,
        expires_at: None,
    });
}

/// [`check_protocol`] with every write expiring at [`EXPIRES_AT`]:
/// `script` gives the real answers to those.
pub fn check_protocol_expiring(
    open: fn(Answers) -> Box<dyn Bucket>,
    script: fn(Op) -> Vec<Response>,
    version: &'static [u8],
    headers: &'static [&'static str],
) {
    check(&Protocol {
        open,
        script,
        version,
        headers,
        expires_at: Some(EXPIRES_AT),
    });
}

fn check(protocol: &Protocol) {
    real_answers_succeed(protocol);
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let arbitrary = (prop::sample::select(OPS.to_vec()), any_answers(protocol.headers));
    runner
        .run(&arbitrary, |(op, answers)| outcome(protocol, op, answers))
        .unwrap();
    for op in OPS {
        for answers in mutations(&(protocol.script)(op)) {
            if let Err(failure) = outcome(protocol, op, answers.clone()) {
                panic!("{failure}: on {answers:?}");
            }
        }
    }
}

fn real_answers_succeed(protocol: &Protocol) {
    for op in OPS {
        let answers = Answers::new((protocol.script)(op));
        let bucket = (protocol.open)(answers.clone());
        let result = op.run(&*bucket, protocol.version, protocol.expires_at);
        assert!(result.is_ok(), "{op:?} on its real answers: {result:?}");
        assert_eq!(answers.left(), 0, "{op:?} did not read all its answers");
    }
}

/// `op` on `answers` returns `Ok` or a one-line `other(..)`.
fn outcome(protocol: &Protocol, op: Op, answers: Vec<Response>) -> Result<(), TestCaseError> {
    let bucket = (protocol.open)(Answers::new(answers));
    match op.run(&*bucket, protocol.version, protocol.expires_at) {
        Ok(()) => Ok(()),
        Err(Error::Other(message)) => {
            prop_assert!(!message.is_empty(), "{op:?}: an empty message");
            prop_assert!(
                !message.contains(char::is_control),
                "{op:?}: not one line: {message:?}"
            );
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!("{op:?}: {other:?} is not other(..)"))),
    }
}

/// Arbitrary answers: any status a service uses, some of the headers the
/// protocol reads with any text, and any bytes or any JSON.
fn any_answers(headers: &'static [&'static str]) -> impl Strategy<Value = Vec<Response>> {
    let status = prop::sample::select(vec![
        200u16, 201, 202, 204, 400, 401, 404, 409, 412, 429, 500, 503,
    ]);
    let header = (prop::sample::select(headers.to_vec()), ".{0,40}");
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        any_json().prop_map(|value| value.to_string().into_bytes()),
    ];
    let one = (status, prop::collection::vec(header, 0..4), body).prop_map(|(status, headers, body)| {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        answer(status, &headers, body)
    });
    prop::collection::vec(one, 1..6)
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
        prop::sample::select(vec!["true", "false", "0", "-1", "dmFsdWU=", "a", "b/a", "Yi9h"])
            .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "kvs",
                    "key",
                    "value",
                    "more",
                    "count",
                    "succeeded",
                    "responses",
                    "token",
                    "Item",
                    "Items",
                    "Responses",
                    "LastEvaluatedKey",
                    "UnprocessedKeys",
                    "UnprocessedItems",
                    "version",
                    "B",
                    "S",
                    "N",
                    "t",
                    "RowKey",
                    "v0",
                    "odata.error",
                    "message",
                ]),
                inner,
                0..6
            )
            .prop_map(|map| Value::Object(map.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// Values of every JSON type, to put where a real answer has another.
fn wrong_types() -> Vec<Value> {
    vec![
        Value::Null,
        Value::Bool(true),
        Value::from(-1),
        Value::from(1.5),
        Value::from("x"),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!([{ "key": 1 }]),
    ]
}

/// Every answer of a real script changed in every way in turn, one change
/// at a time: its body cut at each length; each node of a JSON body
/// replaced by each of [`wrong_types`], or each byte of another body
/// changed; another status; a header dropped.
fn mutations(script: &[Response]) -> Vec<Vec<Response>> {
    let mut all = Vec::new();
    for (i, answer) in script.iter().enumerate() {
        let mut changed = |change: &dyn Fn(&mut Response)| {
            let mut answers = script.to_vec();
            change(&mut answers[i]);
            all.push(answers);
        };
        for cut in 0..answer.body.len() {
            changed(&|a| a.body.truncate(cut));
        }
        match serde_json::from_slice::<Value>(&answer.body) {
            Ok(value) => {
                for node in 0..count_nodes(&value) {
                    for with in wrong_types() {
                        let mut value = value.clone();
                        replace_node(&mut value, node, &with);
                        changed(&|a| a.body = value.to_string().into_bytes());
                    }
                }
            }
            Err(_) => {
                for at in 0..answer.body.len() {
                    for byte in [b'\0', b'\n', b'<', b'"', b'%', b'-', b'9', 0xff] {
                        changed(&|a| a.body[at] = byte);
                    }
                }
            }
        }
        for status in [200, 204, 400, 404, 409, 412, 500] {
            changed(&|a| a.status = status);
        }
        for header in 0..answer.headers.len() {
            changed(&|a| {
                a.headers.remove(header);
            });
        }
    }
    all
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Replaces the `n`th node in document order (0: the whole value); returns
/// how many nodes it passed when `n` lies beyond `value`.
fn replace_node(value: &mut Value, n: usize, with: &Value) -> usize {
    if n == 0 {
        *value = with.clone();
        return 0;
    }
    let mut passed = 1;
    let children: Vec<&mut Value> = match value {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Object(map) => map.values_mut().collect(),
        _ => Vec::new(),
    };
    for child in children {
        let seen = replace_node(child, n - passed, with);
        if seen == 0 {
            return 0;
        }
        passed += seen;
    }
    passed
}

#[test]
fn mutations_reach_every_node() {
    let mut value = serde_json::json!({"a": [1, {"b": 2}], "c": 3});
    assert_eq!(count_nodes(&value), 6);
    replace_node(&mut value, 4, &Value::Null);
    assert_eq!(value, serde_json::json!({"a": [1, {"b": null}], "c": 3}));
    replace_node(&mut value, 5, &Value::Bool(true));
    assert_eq!(value, serde_json::json!({"a": [1, {"b": null}], "c": true}));
}
