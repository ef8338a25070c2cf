// A module in a subfolder: uploaded as "lib/status.js", the path the
// main module imports it by.
export function status(env) {
  return { ok: true, stripe: env.STRIPE_MODE };
}
