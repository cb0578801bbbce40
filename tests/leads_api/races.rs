//! Conditional writes under races: requests joined at once against the emulator, each past the
//! read-side check, so the write's condition is what must refuse.

use super::*;

/// Six people edit version 1 of one lead at once. Each reads version 1, so the pre-check lets
/// all six through: the update's condition on the version must let one win and refuse five
/// (409), and the lead holds the winner's change at version 2.
#[tokio::test]
async fn concurrent_edits_of_one_version_let_exactly_one_win() {
    let t = setup().await;
    let (tenant, owner) = workspace(&t, "race-owner").await;
    let id = seed_leads(&t, &tenant, 1, one_seed("race")).await.remove(0);
    let path = format!("/v1/leads/{id}");
    let meter = t.w.meter();
    let app = leads_app(&t.w, meter.instrument(&t.w.clients.dynamo)).await;
    let futures: Vec<_> = (0..6)
        .map(|i| {
            let e = event(
                "PATCH",
                &path,
                "",
                Some(&json!({"version": 1, "name": format!("Editor {i}")})),
                Some(&owner.token),
            );
            let app = &app;
            async move {
                let resp = leads_api::handle(app, request(&e)).await;
                (resp.status().as_u16(), response_json(&resp), i)
            }
        })
        .collect();
    let replies = join_all(futures).await;
    let (sent, refused) = writes_sent_and_refused(&meter);

    let winners: Vec<_> = replies.iter().filter(|(s, _, _)| *s == 200).collect();
    assert_eq!(winners.len(), 1, "{replies:?}");
    for (status, body, _) in replies.iter().filter(|(s, _, _)| *s != 200) {
        assert_eq!(
            (*status, body["error"]["code"].as_str()),
            (409, Some("version_conflict"))
        );
    }
    assert!(
        refused >= 1,
        "the version condition refused none of {sent} writes: the pre-check did all the work"
    );
    let r = get(&t, &owner, &path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["name"], format!("Editor {}", winners[0].2));
}
