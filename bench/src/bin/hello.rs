//! The cold-start baseline: the smallest `lambda_http` function, built with the workspace's
//! release profile like every function. `make bench` compares lead-intake's init against it.

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_req: Request| async {
        Ok::<_, Error>(Response::new(Body::from("hello")))
    }))
    .await
}
