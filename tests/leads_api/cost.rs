//! What a page of leads costs: DynamoDB requests and items read (ScannedCount).

use super::*;
use std::sync::Mutex;

use aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::query::QueryOutput;

/// Records each Query's `Count`, `ScannedCount` and the bytes of the items it returned (by
/// DynamoDB's item-size rules) from the response.
#[derive(Debug, Clone, Default)]
struct ScannedCounts(Arc<Mutex<Vec<(i32, i32, u64)>>>);

impl Intercept for ScannedCounts {
    fn name(&self) -> &'static str {
        "ScannedCounts"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(out) = context.output_or_error() {
            if let Some(q) = out.downcast_ref::<QueryOutput>() {
                let bytes = q
                    .items()
                    .iter()
                    .flat_map(|it| it.iter())
                    .map(|(name, v)| name.len() as u64 + shared_core::metering::av_size(v))
                    .sum();
                self.0
                    .lock()
                    .unwrap()
                    .push((q.count, q.scanned_count, bytes));
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn one_page_of_50_leads_is_one_query_reading_at_most_50_items() {
    let mut t = setup().await;
    let (tenant, owner) = workspace(&t, "cost-owner").await;
    seed_leads(
        &t,
        &tenant,
        500,
        Seed {
            step: Duration::seconds(30),
            ..one_seed("cost")
        },
    )
    .await;

    let meter = t.w.meter();
    let scanned = ScannedCounts::default();
    let metered = meter.instrument(&t.w.clients.dynamo);
    let client = aws_sdk_dynamodb::Client::from_conf(
        metered
            .config()
            .to_builder()
            .interceptor(scanned.clone())
            .build(),
    );
    t.app = leads_app(&t.w, client).await;

    let mut cursor: Option<String> = None;
    for page in 1..=3 {
        meter.reset();
        scanned.0.lock().unwrap().clear();
        let path = match &cursor {
            Some(c) => format!("/v1/leads?cursor={c}"),
            None => "/v1/leads".to_string(),
        };
        let r = get(&t, &owner, &path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.items().len(), 50);
        let usage = meter.usage(&t.w.clients.dynamo).await.unwrap();
        let counts = scanned.0.lock().unwrap().clone();
        // A Query is billed on the total size it read, rounded up to 4 KB; half for an
        // eventually consistent read (an index).
        let read_units = counts[0].2.div_ceil(4096) as f64 / 2.0;
        eprintln!(
            "page {page} of 50 leads (500 in the tenant): requests {:?}, Query (Count, ScannedCount, bytes) {:?}, {read_units} read units",
            usage.operations, counts
        );
        assert_eq!(usage.operations, ["Query"]);
        assert_eq!(counts.len(), 1);
        assert!(counts[0].1 <= 50, "{counts:?}");
        assert_eq!(counts[0].0, 50);
        cursor = r.cursor();
    }

    // The form filter reads a page and returns those of the form (here: none of them).
    meter.reset();
    scanned.0.lock().unwrap().clear();
    let r = get(&t, &owner, "/v1/leads?form=fm-other").await;
    let counts = scanned.0.lock().unwrap().clone();
    eprintln!("form filter, no match: {} items, Query (Count, ScannedCount, bytes) {counts:?}, next_cursor set: {}", r.items().len(), r.cursor().is_some());
    assert_eq!(
        meter.usage(&t.w.clients.dynamo).await.unwrap().operations,
        ["Query"]
    );
    assert!(counts[0].1 <= 50);

    // A lead with everything under it: one Query on its partition.
    let lead = get(&t, &owner, "/v1/leads?limit=1").await.ids()[0].clone();
    meter.reset();
    assert_eq!(
        get(&t, &owner, &format!("/v1/leads/{lead}")).await.status,
        200
    );
    let usage = meter.usage(&t.w.clients.dynamo).await.unwrap();
    eprintln!(
        "one lead with its partition: requests {:?}",
        usage.operations
    );
    assert_eq!(usage.operations, ["Query"]);
}
