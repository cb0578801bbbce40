// Uses the client generated from docs/openapi.yaml (generated/api.d.ts, by openapi-typescript)
// the way an application would, and is type-checked in `make test` (tests/contract/client.sh):
// a change of the document that breaks callers (a renamed field, a removed operation, a looser
// or stricter type) fails here. Never run; `tsc --noEmit` only.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/api";

type Lead = components["schemas"]["Lead"];
type ApiError = components["schemas"]["Error"];

const api = createClient<paths>({ baseUrl: "http://127.0.0.1:9000" });

export async function submitAndRead(token: string): Promise<Lead | ApiError> {
  const submitted = await api.POST("/v1/forms/{formId}/submissions", {
    params: { path: { formId: "demo-contact" } },
    body: { email: "ana@example.com", name: "Ana", consent_marketing: true },
  });
  if (!submitted.data) {
    return submitted.error as ApiError;
  }
  const leadId: string = submitted.data.lead_id;
  const lead = await api.GET("/v1/leads/{leadId}", {
    params: { path: { leadId } },
    headers: { Authorization: `Bearer ${token}` },
  });
  if (lead.error) {
    const code: string = lead.error.error.code;
    return { error: { code, message: lead.error.error.message } };
  }
  return lead.data;
}

export async function fileAccessRequest(): Promise<string | undefined> {
  const filed = await api.POST("/v1/privacy/requests", {
    body: { type: "access", email: "ana@example.com" },
  });
  return filed.data?.request_id;
}

export async function exportLeads(token: string): Promise<string | undefined> {
  const exported = await api.POST("/v1/exports", {
    body: { format: "csv" },
    headers: { Authorization: `Bearer ${token}` },
  });
  return exported.data?.download_url;
}

export function refusedByTheTypes(): void {
  void api.POST("/v1/exports", {
    // @ts-expect-error: formats are csv or json
    body: { format: "xml" },
  });
  void api.POST("/v1/privacy/requests", {
    // @ts-expect-error: email is required
    body: { type: "access" },
  });
  // @ts-expect-error: no such path
  void api.GET("/v1/nowhere");
}
