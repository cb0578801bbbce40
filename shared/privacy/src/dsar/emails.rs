//! The emails of the request lifecycle. Subject emails say what happened and link the status
//! page; controller emails (alerts, the deadline digest) carry request ids, types and dates only,
//! never the subject's personal data.

use time::Date;

use super::deadlines::ymd;
use super::job::JobOutcome;
use super::model::RequestType;
use shared_mail::OutgoingEmail;

/// Every answer to a subject names this right (GDPR Art 77; CCPA: the CPPA).
pub const COMPLAINT_RIGHT: &str = "You have the right to lodge a complaint with a supervisory \
authority: in Romania the ANSPDCP (www.dataprotection.ro), or the data protection authority of \
the EU country where you live, work or where the matter arose; in California the California \
Privacy Protection Agency (cppa.ca.gov).";

/// A plain email (the HTML part is the text's paragraphs, escaped): now `shared_mail::email`.
pub use shared_mail::email;

/// The longest reason a subject's email carries (the API takes no longer one).
pub const REASON_MAX_CHARS: usize = 1000;

/// A controller's reason as the subject's email carries it: the controller may file a request
/// for any address (on behalf), so its text goes out bounded and link-free.
fn controller_text(reason: &str) -> String {
    shared_mail::outbound::text_for_mail(reason, REASON_MAX_CHARS)
}

pub fn verification_code(
    to: &str,
    t: RequestType,
    request_id: &str,
    code: &str,
    valid_hours: i64,
    status_url: &str,
    on_behalf: bool,
) -> OutgoingEmail {
    let who = if on_behalf {
        "A company holding your data filed, on your behalf,"
    } else {
        "We received"
    };
    email(
        to,
        "Confirm your privacy request",
        &format!(
            "{who} a request for {what} (request {request_id}).\n\n\
             To confirm it is yours, enter this code: {code}\n\n\
             The code is valid for {valid_hours} hours. Nothing is disclosed or changed before \
             you confirm. If you did not ask for this, ignore this email: the request lapses.\n\n\
             Follow your request: {status_url}",
            what = t.describe()
        ),
    )
}

pub fn received(
    to: &str,
    t: RequestType,
    request_id: &str,
    due: Option<Date>,
    status_url: &str,
) -> OutgoingEmail {
    let due = due
        .map(|d| format!("It will be answered by {}.", ymd(d)))
        .unwrap_or_else(|| "It will be answered within the legal period.".to_string());
    email(
        to,
        "Your privacy request is confirmed",
        &format!(
            "Your request for {what} (request {request_id}) is confirmed and has been received. \
             {due}\n\nFollow your request: {status_url}",
            what = t.describe()
        ),
    )
}

pub fn denied(
    to: &str,
    t: RequestType,
    request_id: &str,
    reason: &str,
    status_url: &str,
) -> OutgoingEmail {
    email(
        to,
        "Your privacy request was refused",
        &format!(
            "Your request for {what} (request {request_id}) was refused.\n\n\
             Reason given by the controller: {reason}\n\n{COMPLAINT_RIGHT} You may also seek a \
             judicial remedy.\n\nYour request: {status_url}",
            what = t.describe(),
            reason = controller_text(reason)
        ),
    )
}

pub fn extended(
    to: &str,
    t: RequestType,
    request_id: &str,
    reason: &str,
    new_due: Date,
    status_url: &str,
) -> OutgoingEmail {
    email(
        to,
        "Your privacy request needs more time",
        &format!(
            "The answer to your request for {what} (request {request_id}) needs more time, as \
             the law allows. It will be answered by {due}.\n\nReason: {reason}\n\n\
             {COMPLAINT_RIGHT}\n\nYour request: {status_url}",
            what = t.describe(),
            due = ymd(new_due),
            reason = controller_text(reason)
        ),
    )
}

pub fn completed(
    to: &str,
    t: RequestType,
    request_id: &str,
    outcome: &JobOutcome,
    status_url: &str,
) -> OutgoingEmail {
    let mut lines = Vec::new();
    if outcome.counts.is_empty() {
        lines.push("No data about you was found.".to_string());
    } else {
        for (kind, count) in &outcome.counts {
            lines.push(format!("- {kind}: {count}"));
        }
    }
    for k in &outcome.kept {
        let until = k
            .retain_until
            .as_deref()
            .map(|u| format!(" until {u}"))
            .unwrap_or_default();
        lines.push(format!(
            "- kept: {} ({}), legal basis: {}{until}",
            k.what, k.count, k.legal_basis
        ));
    }
    let delivery = if outcome.export_keys.is_empty() {
        String::new()
    } else {
        "\n\nYour data is delivered by a separate email with a download link that expires."
            .to_string()
    };
    email(
        to,
        "Your privacy request is complete",
        &format!(
            "Your request for {what} (request {request_id}) has been carried out.\n\n{list}\
             {delivery}\n\n{COMPLAINT_RIGHT}\n\nYour request: {status_url}",
            what = t.describe(),
            list = lines.join("\n")
        ),
    )
}

pub fn restriction_ending(to: &str, request_id: &str, status_url: &str) -> OutgoingEmail {
    email(
        to,
        "The restriction of your data is being lifted",
        &format!(
            "The restriction of processing you obtained (request {request_id}) is being lifted \
             by the controller: your data may be processed again as before.\n\n\
             {COMPLAINT_RIGHT}\n\nYour request: {status_url}"
        ),
    )
}

/// An objection to legitimate-interest processing the controller refused by recording
/// compelling legitimate grounds (GDPR Art. 21(1)); sent before the restriction that held the
/// data while it decided is lifted (Art. 18(3)).
pub fn compelling_grounds(
    to: &str,
    request_id: &str,
    grounds: &str,
    status_url: &str,
) -> OutgoingEmail {
    email(
        to,
        "Your objection: the controller continues the processing",
        &format!(
            "You objected to the processing of your personal data based on legitimate interest \
             (request {request_id}). The controller has recorded compelling legitimate grounds \
             for continuing it, which it considers to override your interests, rights and \
             freedoms:\n\n{grounds}\n\nThe restriction of your data while it decided is being \
             lifted: your data may be processed again as before. Your objection to direct \
             marketing, if you make one, is always honoured.\n\n{COMPLAINT_RIGHT} You may also \
             seek a judicial remedy.\n\nYour request: {status_url}",
            grounds = controller_text(grounds)
        ),
    )
}

/// To a controller's owners and admins (or the operator): a request could not be carried out.
pub fn failed_alert(to: &str, request_id: &str, t: RequestType) -> OutgoingEmail {
    email(
        to,
        "A privacy request failed",
        &format!(
            "Privacy request {request_id} ({t}) could not be carried out and needs attention. \
             Approve it again once the cause is fixed; the work resumes where it stopped.",
            t = t.as_str()
        ),
    )
}

/// One line of a deadline digest.
pub struct DigestLine {
    pub request_id: String,
    pub request_type: RequestType,
    pub status: &'static str,
    pub due: Date,
    pub overdue: bool,
}

pub fn digest(to: &str, day: Date, lines: &[DigestLine]) -> OutgoingEmail {
    let overdue = lines.iter().filter(|l| l.overdue).count();
    let body = lines
        .iter()
        .map(|l| {
            format!(
                "- {} {} ({}) due {}{}",
                l.request_id,
                l.request_type.as_str(),
                l.status,
                ymd(l.due),
                if l.overdue { " OVERDUE" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    email(
        to,
        &format!("Privacy requests due: {} ({overdue} overdue)", lines.len()),
        &format!(
            "Privacy requests due within 7 days or overdue, as of {}:\n\n{body}\n\n\
             Answer them in the privacy requests queue.",
            ymd(day)
        ),
    )
}
