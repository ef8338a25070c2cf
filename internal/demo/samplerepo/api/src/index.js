export default {
  async fetch(request, env) {
    return Response.json({ ok: true, stripe: env.STRIPE_MODE });
  },
};
