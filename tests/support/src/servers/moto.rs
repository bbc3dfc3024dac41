//! moto (a local AWS: DynamoDB, S3, IAM) on 127.0.0.1, with SigV4
//! authentication enforced: moto lets the first few actions through
//! unauthenticated (`INITIAL_NO_AUTH_ACTION_COUNT`), which create an IAM
//! user with an access key and an allow-all policy, and the table; every
//! later request must be signed by that key. moto comes from PyPI:
//! `bash tests/run.sh` installs it (`pip install -r tests/requirements.txt`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kv_runner::RunOptions;

use crate::WorkDir;

use super::{Process, free_port, temp_dir, wait_until};

/// The region the tests sign for.
pub const REGION: &str = "us-east-1";

/// The actions the setup sends unauthenticated: CreateUser,
/// CreateAccessKey, PutUserPolicy and one create (table or bucket).
/// moto enforces SigV4 for both DynamoDB and S3 after them.
const SETUP_ACTIONS: u32 = 4;

pub struct Moto {
    port: u16,
    pub access_key_id: String,
    pub secret_access_key: String,
    _process: Process,
    // Last: removed after the process is killed.
    _dir: WorkDir,
}

impl Moto {
    /// moto with an IAM user whose key the tests sign with, and a DynamoDB
    /// table `table` keyed as kv-http's dynamodb protocol wants.
    pub fn with_dynamodb_table(name: &str, table: &str) -> Result<Self> {
        let moto = Moto::start(name, true)?;
        let create = format!(
            r#"{{"TableName": "{table}", "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{{"AttributeName": "bucket", "KeyType": "HASH"}},
                              {{"AttributeName": "key", "KeyType": "RANGE"}}],
                "AttributeDefinitions": [{{"AttributeName": "bucket", "AttributeType": "S"}},
                                         {{"AttributeName": "key", "AttributeType": "S"}}]}}"#
        );
        moto.setup_call(
            "dynamodb",
            "POST",
            "/",
            &[
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amz-target", "DynamoDB_20120810.CreateTable"),
            ],
            &create,
        )
        .context("creating the DynamoDB table")?;
        Ok(moto)
    }

    /// moto with an IAM user whose key the tests sign with, and an S3
    /// bucket `bucket`. `enforce_auth: false` leaves every request
    /// unchecked: moto's server cannot check the signature of an S3 request
    /// whose path or query holds a %-escape (it signs the decoded URL, so
    /// even boto3 is refused for key `100%` or `ListObjectsV2` with
    /// `prefix=a/`); the tests that need such keys run without it.
    pub fn with_s3_bucket(name: &str, bucket: &str, enforce_auth: bool) -> Result<Self> {
        let moto = Moto::start(name, enforce_auth)?;
        moto.setup_call("s3", "PUT", &format!("/{bucket}"), &[], "")
            .context("creating the S3 bucket")?;
        Ok(moto)
    }

    fn start(name: &str, enforce_auth: bool) -> Result<Self> {
        let dir = temp_dir(&format!("moto-{name}"));
        let port = free_port();
        let mut command = Command::new(python()?);
        command
            .args(["-c", SERVE, "127.0.0.1", &port.to_string()])
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT");
        if enforce_auth {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_ACTIONS.to_string());
        }
        let mut process = Process::spawn("moto", &mut command, dir.join("moto.log"))?;
        wait_until(&mut [&mut process], "moto", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .context("is moto installed? `bash tests/run.sh` installs it")?;
        let mut moto = Moto {
            port,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            _process: process,
            _dir: dir,
        };
        moto.create_user()?;
        Ok(moto)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `--credential` flags that read the key from [`Moto::run_options`]'s env.
    pub fn credential_flags() -> Vec<String> {
        vec![
            "access-key-id=env:AWS_ACCESS_KEY_ID".into(),
            "secret-access-key=env:AWS_SECRET_ACCESS_KEY".into(),
        ]
    }

    /// A captured run with these arguments, signing with moto's key.
    pub fn run_options(&self, args: &[&str]) -> RunOptions {
        run_options_as(args, &self.access_key_id, &self.secret_access_key)
    }

    /// The IAM user `kv` with an access key and an allow-all inline policy.
    fn create_user(&mut self) -> Result<()> {
        let iam = |body: &str| {
            self.setup_call(
                "iam",
                "POST",
                "/",
                &[("content-type", "application/x-www-form-urlencoded")],
                &format!("Version=2010-05-08&UserName=kv&{body}"),
            )
        };
        iam("Action=CreateUser").context("creating the IAM user")?;
        let key = iam("Action=CreateAccessKey").context("creating the access key")?;
        let policy = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C\
                      %22Action%22%3A%22*%22%2C%22Resource%22%3A%22*%22%7D%5D%7D";
        iam(&format!(
            "Action=PutUserPolicy&PolicyName=all&PolicyDocument={policy}"
        ))
        .context("allowing the user everything")?;
        self.access_key_id = xml_element(&key, "AccessKeyId")?;
        self.secret_access_key = xml_element(&key, "SecretAccessKey")?;
        Ok(())
    }

    /// One of the unauthenticated setup actions. moto finds the service
    /// from the credential scope, so it carries a placeholder signature.
    fn setup_call(
        &self,
        service: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut request = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=setup/20260101/{REGION}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0\r\n",
            self.port,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let status = answer.split(' ').nth(1).unwrap_or_default();
        if status != "200" {
            bail!("moto answered {service} setup with:\n{answer}");
        }
        Ok(answer)
    }
}

/// A captured run with these arguments, signing with this key.
pub fn run_options_as(args: &[&str], access_key_id: &str, secret: &str) -> RunOptions {
    RunOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![
            ("AWS_ACCESS_KEY_ID".into(), access_key_id.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), secret.into()),
        ],
        capture_output: true,
        ..RunOptions::default()
    }
}

/// The counter, composed with `protocol` (`"dynamodb"`, `"s3"`) on moto,
/// run with a wrong key: a wrong secret for the real key id fails SigV4's
/// check with the service's message (asserted here, the same on both
/// services), and an unknown key id with the real secret fails too; its
/// one-line error, which each service words its own way, is returned.
pub fn refused_credentials(moto: &Moto, counter: &kv_runner::Command, protocol: &str) -> String {
    let wrong_secret = format!("{}x", moto.secret_access_key);
    let [wrong_secret, unknown_key] = [
        (moto.access_key_id.as_str(), wrong_secret.as_str()),
        ("AKIAUNKNOWNKEY000000", moto.secret_access_key.as_str()),
    ]
    .map(|(id, secret)| {
        let output = counter.run(&run_options_as(&[], id, secret)).unwrap();
        assert_eq!(output.exit_code, 1, "{}", output.stdout_text());
        output.stderr_text().trim().to_string()
    });
    let signature = format!(
        "counter: {protocol}: 403 SignatureDoesNotMatch: The request signature we calculated does not match"
    );
    assert!(wrong_secret.starts_with(&signature), "{wrong_secret}");
    unknown_key
}

fn xml_element(text: &str, tag: &str) -> Result<String> {
    let start = text
        .find(&format!("<{tag}>"))
        .with_context(|| format!("no <{tag}> in moto's answer:\n{text}"))?
        + tag.len()
        + 2;
    let len = text[start..]
        .find(&format!("</{tag}>"))
        .with_context(|| format!("no </{tag}> in moto's answer"))?;
    Ok(text[start..start + len].to_string())
}

/// `moto_server`'s own start, but serving one request at a time: moto's
/// conditional writes (S3 `If-Match`) check and write without a lock, so
/// concurrent requests could both pass the check, which real S3 and
/// DynamoDB never allow.
const SERVE: &str = "import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
run_simple(sys.argv[1], int(sys.argv[2]), DomainDispatcherApplication(create_backend_app), threaded=False)
";

/// Finds python3, or says how to install it.
/// The Python with moto: `tests/.venv`'s, where `tests/run.sh` installs
/// it, else python3 on PATH (moto installed by hand).
fn python() -> Result<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python3");
    if venv.is_file() {
        return Ok(venv);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .find(|candidate| candidate.is_file())
        .context("python3 is not installed: moto (tests/requirements.txt) needs it; `bash tests/run.sh` installs it")
}
