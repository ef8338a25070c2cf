import { status } from "./lib/status.js";

export default {
  async fetch(request, env) {
    return Response.json(status(env));
  },
};
