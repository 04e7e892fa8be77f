// A client of the example app typed by the OpenAPI document keryx serves: spec/openapi/check.mjs
// generates ./api.d.ts from GET /api/swagger (openapi-typescript) and tsc --strict checks this
// file against it. client_wrong.ts holds the same reads with deliberate mistakes, which must fail.
import type { components, paths } from "./api";

type Json<Op, Status extends number> = Op extends { responses: infer R }
  ? Status extends keyof R
    ? R[Status] extends { content: { "application/json": infer B } } ? B : never
    : never
  : never;

type MessagesList = paths["/messages"]["get"];
declare const list: Json<MessagesList, 200>;
export const bodies: string[] = list.data.map((m) => m.body);
export const firstId: number | undefined = list.data[0]?.id;
export const pages: number = list.pagination.pages;

type Query = NonNullable<MessagesList["parameters"]["query"]>;
export const query: Query = { page: 2, limit: 10 };

declare const posted: Json<paths["/message"]["put"], 200>;
export const postedBody: string = posted.message.body;
export const newMessage: paths["/message"]["put"]["requestBody"]["content"]["application/json"] = { body: "hi" };

declare const me: Json<paths["/me"]["get"], 200>;
export const email: string = me.user.email;

declare const login: Json<paths["/session"]["put"], 200>;
export const sessionId: string = login.session.id;

declare const hello: Json<paths["/hello"]["get"], 200>;
export const greeting: string = hello.message;

// Errors: the real envelope, under the statuses keryx sends.
declare const notLoggedIn: Json<paths["/me"]["get"], 401>;
export const errorType: string = notLoggedIn.error.type;
export const errorAt: number = notLoggedIn.error.timestamp;
declare const invalid: Json<paths["/user"]["put"], 406>;
export const errorKey: string | undefined = invalid.error.key;
declare const limited: Json<paths["/hello"]["get"], 429>;
export const limitedMessage: string = limited.error.message;
export const envelope: components["schemas"]["Error"] = { error: { message: "m", type: "T", timestamp: 1 } };
