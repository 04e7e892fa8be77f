// client.ts with deliberate mistakes: tsc must report each one (line numbers are asserted by
// spec/integration/openapi_spec.lua), proving the type check can fail.
import type { paths } from "./api";

type Json<Op, Status extends number> = Op extends { responses: infer R }
  ? Status extends keyof R
    ? R[Status] extends { content: { "application/json": infer B } } ? B : never
    : never
  : never;

declare const list: Json<paths["/messages"]["get"], 200>;
export const wrongType: number = list.data[0].body; // line 12: a message body is a string
export const missing: string = list.data[0].title; // line 13: messages have no title
declare const notLimited: paths["/me"]["get"]["responses"][429]; // line 14: /me is not rate limited
export const use = notLimited;
