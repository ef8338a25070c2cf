export default {
  async fetch(request, env) {
    return Response.json({ service: "auth", commit: env.DEPLOYBOT_COMMIT });
  },
};
