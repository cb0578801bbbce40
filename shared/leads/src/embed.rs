//! The snippet a tenant pastes into its website: a plain HTML form that posts to lead intake and
//! works without JavaScript (intake answers a form post with a redirect to the form's
//! `redirect_url`), and a small inline script that, when it runs, sends the same fields with
//! `fetch` and shows the API's per-field messages beside the fields instead of leaving the page.
//!
//! The script also solves the form's proof of work (issue 19): on page load it fetches a
//! challenge (`GET …/challenge`, CORS-simple too) and finds its number with the browser's
//! SHA-256 (`crypto.subtle`), 200 hashes at a time so the page stays responsive; the solution
//! goes with the submission as `_altcha` (the ALTCHA payload). Without JavaScript, or when the
//! challenge cannot be fetched or solved, the form posts without one and the other layers of the
//! spam defence decide.
//!
//! The script's request is a CORS "simple" one: a URL-encoded body (what the plain form posts),
//! `Accept: application/json` and no other header, its idempotency key in the body
//! (`_idempotency_key`) rather than a header. So the browser sends it without a preflight
//! `OPTIONS`: one API request and one invocation per submission instead of two.
//!
//! Everything from the form's record is escaped for where it lands (HTML text, attribute, or a
//! JavaScript string inside `<script>`), so a consent text or a field name cannot inject markup.

use std::fmt::Write as _;

use super::forms::FormDefinition;
use shared_core::domain::FieldKind;

/// The URL the form posts to.
pub fn submit_url(api_base_url: &str, form: &FormDefinition) -> String {
    format!(
        "{}/v1/forms/{}/submissions",
        api_base_url.trim_end_matches('/'),
        form.form_id
    )
}

/// The snippet for `form`, posting to the API at `api_base_url`.
pub fn embed_html(form: &FormDefinition, api_base_url: &str) -> String {
    let id = format!("lf-{}", form.form_id);
    let mut h = String::with_capacity(4096);
    let _ = writeln!(
        h,
        r#"<form id="{id}" class="lf-form" action="{action}" method="post" accept-charset="utf-8">"#,
        action = attr(&submit_url(api_base_url, form)),
    );
    for f in &form.fields {
        let d = &f.def;
        let input_id = format!("{id}-{}", d.name);
        let required = if d.required { " required" } else { "" };
        let _ = writeln!(h, r#"  <p class="lf-field">"#);
        let _ = writeln!(
            h,
            r#"    <label for="{input_id}">{label}{star}</label>"#,
            label = text(&label(&d.name)),
            star = if d.required { " *" } else { "" },
        );
        let autocomplete = match d.name.as_str() {
            "email" => " autocomplete=\"email\"",
            "phone" => " autocomplete=\"tel\"",
            "name" => " autocomplete=\"name\"",
            "company" => " autocomplete=\"organization\"",
            _ => "",
        };
        let described = format!(r#" aria-describedby="{input_id}-error""#);
        match d.kind {
            FieldKind::LongText => {
                let _ = writeln!(
                    h,
                    r#"    <textarea id="{input_id}" name="{name}" maxlength="{max}" rows="5"{described}{required}></textarea>"#,
                    name = attr(&d.name),
                    max = d.max_len(),
                );
            }
            kind => {
                let input_type = match kind {
                    FieldKind::Email => "email",
                    FieldKind::Phone => "tel",
                    _ => "text",
                };
                let _ = writeln!(
                    h,
                    r#"    <input id="{input_id}" name="{name}" type="{input_type}" maxlength="{max}"{autocomplete}{described}{required}>"#,
                    name = attr(&d.name),
                    max = d.max_len(),
                );
            }
        }
        let _ = writeln!(
            h,
            r#"    <span class="lf-error" id="{input_id}-error" hidden></span>"#
        );
        let _ = writeln!(h, "  </p>");
    }
    for c in &form.consents {
        let name = format!("consent_{}", c.key);
        let _ = writeln!(h, r#"  <p class="lf-consent">"#);
        let _ = writeln!(
            h,
            r#"    <label><input type="checkbox" name="{n}" value="true" aria-describedby="{id}-{n}-error"{req}> {t}</label>"#,
            n = attr(&name),
            req = if c.required { " required" } else { "" },
            t = text(&c.text),
        );
        let _ = writeln!(
            h,
            r#"    <span class="lf-error" id="{id}-{n}-error" hidden></span>"#,
            n = attr(&name)
        );
        let _ = writeln!(h, "  </p>");
    }
    // The honeypot: invisible to people and to screen readers, filled by bots.
    let _ = writeln!(
        h,
        r#"  <div aria-hidden="true" style="position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden"><input type="text" name="{hp}" tabindex="-1" autocomplete="off" value=""></div>"#,
        hp = attr(&form.honeypot_field),
    );
    let _ = writeln!(h, r#"  <button type="submit">Send</button>"#);
    let _ = writeln!(
        h,
        r#"  <p class="lf-status" role="status" aria-live="polite"></p>"#
    );
    h.push_str("</form>\n");
    h.push_str(&script(&id, &form.redirect_url));
    h
}

fn script(form_element_id: &str, redirect_url: &str) -> String {
    format!(
        r#"<script>
(function () {{
  "use strict";
  var form = document.getElementById({id});
  if (!form || !window.fetch || !window.FormData || !window.URLSearchParams) return;
  var status = form.querySelector(".lf-status");
  var button = form.querySelector("button[type=submit]");
  // One key per filled-in form: a double click or a retry stores one submission.
  var key = (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : String(Date.now()) + "-" + Math.random().toString(16).slice(2);
  // The proof of work, started at once: the challenge's issue time is the time trap's start.
  // Issued for this key, it is good for this form's post only, and costs no record of its own.
  var pow = solvePow(form.action.replace(/\/submissions$/, "/challenge") +
    "?key=" + encodeURIComponent(key));
  form.addEventListener("submit", function (event) {{
    event.preventDefault();
    var i, slots = form.querySelectorAll(".lf-error");
    for (i = 0; i < slots.length; i++) {{ slots[i].hidden = true; slots[i].textContent = ""; }}
    for (i = 0; i < form.elements.length; i++) {{ form.elements[i].removeAttribute("aria-invalid"); }}
    // What the plain form posts (URL-encoded), plus the page and the key. No custom header and
    // no JSON content type: a CORS-simple request, which the browser sends without a preflight.
    var body = new URLSearchParams(new FormData(form));
    body.set("_page_url", location.href);
    body.set("_idempotency_key", key);
    button.disabled = true;
    status.textContent = "Sending…";
    pow.then(function (solution) {{
      if (solution) body.set("_altcha", solution);
      return fetch(form.action, {{
      method: "POST",
      headers: {{ "Accept": "application/json" }},
      body: body
    }});
    }}).then(function (response) {{
      return response.json().catch(function () {{ return {{}}; }}).then(function (data) {{
        return {{ ok: response.ok, data: data || {{}} }};
      }});
    }}).then(function (r) {{
      if (r.ok) {{ window.location.assign({redirect}); return; }}
      var error = r.data.error || {{}}, fields = error.fields || {{}};
      Object.keys(fields).forEach(function (name) {{
        var slot = document.getElementById({id} + "-" + name + "-error");
        var input = form.elements[name];
        if (slot) {{ slot.textContent = String(fields[name]); slot.hidden = false; }}
        if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
      }});
      status.textContent = error.message || "The form could not be sent.";
    }}).catch(function () {{
      status.textContent = "The form could not be sent; please try again.";
    }}).then(function () {{ button.disabled = false; }});
  }});
  function solvePow(url) {{
    var subtle = window.crypto && crypto.subtle;
    if (!subtle || !window.TextEncoder || !window.btoa) return Promise.resolve(null);
    var encoder = new TextEncoder();
    function hex(buffer) {{
      var bytes = new Uint8Array(buffer), out = "";
      for (var i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
      return out;
    }}
    function search(c, from) {{
      var tries = [];
      for (var n = from; n <= c.maxnumber && n < from + 200; n++) {{
        tries.push(subtle.digest("SHA-256", encoder.encode(c.salt + n)));
      }}
      if (!tries.length) return null;
      return Promise.all(tries).then(function (hashes) {{
        for (var i = 0; i < hashes.length; i++) if (hex(hashes[i]) === c.challenge) return from + i;
        return search(c, from + tries.length);
      }});
    }}
    return fetch(url, {{ headers: {{ "Accept": "application/json" }} }}).then(function (r) {{
      return r.ok ? r.json() : null;
    }}).then(function (c) {{
      if (!c || c.algorithm !== "SHA-256") return null;
      return Promise.resolve(search(c, 0)).then(function (number) {{
        if (number === null || number === undefined) return null;
        return btoa(JSON.stringify({{ algorithm: c.algorithm, challenge: c.challenge,
          number: number, salt: c.salt, signature: c.signature }}));
      }});
    }}).catch(function () {{ return null; }});
  }}
}})();
</script>
"#,
        id = js_string(form_element_id),
        redirect = js_string(redirect_url),
    )
}

/// `email` → `Email`, `long_answer` → `Long answer`.
fn label(name: &str) -> String {
    let spaced = name.replace('_', " ");
    let mut c = spaced.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn attr(s: &str) -> String {
    text(s)
}

/// A JavaScript string literal safe inside a `<script>` element.
fn js_string(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_else(|_| "\"\"".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::{FormDefinition, FormInput};
    use shared_core::domain::{ConsentDef, FormId, TenantId};
    use time::macros::datetime;

    fn form() -> FormDefinition {
        let input: FormInput = serde_json::from_value(serde_json::json!({
            "name": "Contact",
            "allowed_origins": ["https://www.example.com"],
            "redirect_url": "https://www.example.com/thanks",
        }))
        .unwrap();
        let mut f = FormDefinition::create(
            input,
            TenantId::parse("t").unwrap(),
            FormId::parse("fm-1").unwrap(),
            datetime!(2026-11-29 12:00 UTC),
        )
        .unwrap();
        f.consents.push(ConsentDef {
            key: "marketing".into(),
            version: "v1".into(),
            text: "News <b>weekly</b> & \"offers\"".into(),
            required: false,
        });
        f
    }

    #[test]
    fn plain_form_posts_every_field_consent_and_the_honeypot() {
        let html = embed_html(&form(), "https://api.example.com/");
        assert!(html.contains(
            r#"action="https://api.example.com/v1/forms/fm-1/submissions" method="post""#
        ));
        assert!(html.contains(r#"name="email" type="email" maxlength="254" autocomplete="email""#));
        assert!(html.contains("required>"));
        assert!(html.contains(r#"<textarea id="lf-fm-1-message" name="message""#));
        assert!(html.contains(r#"name="consent_marketing" value="true""#));
        assert!(html.contains(r#"name="_gotcha" tabindex="-1""#));
        assert!(html.contains("News &lt;b&gt;weekly&lt;/b&gt; &amp; &quot;offers&quot;"));
        assert!(html.contains("<script>") && html.contains("fetch(form.action"));
    }

    /// The `fetch` call's options object in the script: its header names and values, and the
    /// expression of its body.
    fn fetch_options(html: &str) -> (Vec<(String, String)>, String) {
        let call = &html[html.find("fetch(form.action, {").expect("a fetch call")..];
        let options = &call[..call.find("})").expect("the end of the fetch options")];
        let headers = options
            .split_once("headers: {")
            .and_then(|(_, rest)| rest.split_once('}'))
            .map(|(h, _)| h)
            .expect("a headers object");
        let headers = headers
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let (k, v) = p.split_once(':').expect("name: value");
                let unquote = |x: &str| x.trim().trim_matches('"').to_string();
                (unquote(k), unquote(v))
            })
            .collect();
        let body = options
            .split_once("body:")
            .map(|(_, b)| b.trim().trim_end_matches(',').trim().to_string())
            .expect("a body");
        (headers, body)
    }

    /// A cross-origin request is "simple" (no preflight) when its method is GET, HEAD or POST,
    /// every header it sets is CORS-safelisted, and its content type, if set, is one of three
    /// (Fetch standard, "CORS-safelisted request-header"). A `URLSearchParams` body is sent as
    /// `application/x-www-form-urlencoded;charset=UTF-8`, one of them.
    #[test]
    fn the_script_posts_a_cors_simple_request_so_no_preflight_is_sent() {
        let html = embed_html(&form(), "https://api.example.com");
        let (headers, body) = fetch_options(&html);
        assert!(html.contains(r#"method: "POST""#));
        assert!(!headers.is_empty(), "the script asks for a JSON answer");
        for (name, value) in &headers {
            match name.to_ascii_lowercase().as_str() {
                "accept" | "accept-language" | "content-language" => {}
                "content-type" => assert!(
                    [
                        "application/x-www-form-urlencoded",
                        "multipart/form-data",
                        "text/plain"
                    ]
                    .contains(&value.as_str()),
                    "content type {value} needs a preflight"
                ),
                other => panic!("header {other} is not CORS-safelisted: it needs a preflight"),
            }
        }
        assert!(headers.contains(&("Accept".into(), "application/json".into())));
        assert_eq!(body, "body", "{html}");
        assert!(html.contains("var body = new URLSearchParams(new FormData(form));"));
        // The key a retry reuses travels in the body, not in a header.
        assert!(html.contains(r#"body.set("_idempotency_key", key);"#));
        assert!(html.contains(r#"body.set("_page_url", location.href);"#));
    }

    #[test]
    fn the_script_solves_the_forms_challenge_and_posts_it_with_the_submission() {
        let html = embed_html(&form(), "https://api.example.com");
        // Fetched from the challenge route beside the submit URL, at page load.
        assert!(html.contains(
            r#"solvePow(form.action.replace(/\/submissions$/, "/challenge") +
    "?key=" + encodeURIComponent(key));"#
        ));
        assert!(html.contains(r#"subtle.digest("SHA-256", encoder.encode(c.salt + n))"#));
        assert!(html.contains(r#"if (solution) body.set("_altcha", solution);"#));
        // Its GET is CORS-simple too: only the safelisted Accept header.
        assert!(html.contains(r#"fetch(url, { headers: { "Accept": "application/json" } })"#));
        // Without crypto.subtle (or on any failure) the form still posts, without a solution.
        assert!(html.contains("return Promise.resolve(null);"));
        assert!(html.contains(".catch(function () { return null; });"));
    }

    #[test]
    fn nothing_escapes_into_the_script() {
        assert_eq!(
            js_string("a</script>&\"b"),
            r#""a\u003c/script\u003e\u0026\"b""#
        );
        let html = embed_html(&form(), "https://api.example.com");
        let script = &html[html.find("<script>").unwrap() + 8..];
        assert_eq!(script.matches("</script>").count(), 1, "{script}");
        assert!(script.contains(r#"window.location.assign("https://www.example.com/thanks")"#));
    }
}
