//! An app as wasmCloud users write them, in the shape of wasmCloud's
//! `http-keyvalue-counter` example: a `wasi:http/incoming-handler`
//! component that opens the bucket `""` of `wasi:keyvalue@0.2.0-draft`
//! (wasmCloud's "default bucket") and counts the requests per name:
//! `GET /?name=NAME` answers `Hello xN, NAME!` (`World` without a name).
//! Like that example it treats a store failure as a bug and panics (the
//! runtime turns the trap into a 500). It leaves out the example's
//! `wasi:logging` call, which generic WASI 0.2 runtimes do not serve.

wit_bindgen::generate!({
    path: "../../wit",
    world: "kv-virt:adapters/wasmcloud-counter",
    generate_all,
});

use exports::wasi::http0_2_12::incoming_handler::Guest;
use wasi::http0_2_12::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::keyvalue0_2_0_draft::{atomics, store};

struct HttpServer;

export!(HttpServer);

impl Guest for HttpServer {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let name = match path.split_once("?name=") {
            Some((_, name)) if !name.is_empty() => name.to_string(),
            _ => "World".to_string(),
        };
        let bucket = store::open("").expect("failed to open the default bucket");
        let count = atomics::increment(&bucket, &name, 1).expect("failed to increment the count");

        let response = OutgoingResponse::new(Fields::new());
        response.set_status_code(200).expect("200 is a valid status");
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = body.write().expect("the stream is taken once");
        stream
            .blocking_write_and_flush(format!("Hello x{count}, {name}!\n").as_bytes())
            .expect("failed to write the response");
        drop(stream);
        OutgoingBody::finish(body, None).expect("failed to finish the response");
    }
}
