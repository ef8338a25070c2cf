export default {
  async fetch(request, env) {
    return new Response(`codex web at ${env.DEPLOYBOT_COMMIT}`);
  },
};
