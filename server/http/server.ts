/** The request listener the HTTP server runs, around the app: what every answer gets once shutdown has begun. */
import type { RequestListener } from "node:http";

/**
 * Once shutdown has begun, every answer — also to a request that arrived before — closes its connection, so
 * keep-alive clients reconnect to another instance.
 */
export function serveWithShutdown(state: { readonly shuttingDown: boolean }, serve: RequestListener): RequestListener {
  return (req, res) => {
    const writeHead = res.writeHead;
    res.writeHead = ((...args: Parameters<typeof res.writeHead>) => {
      if (state.shuttingDown) res.setHeader("connection", "close");
      return writeHead.apply(res, args);
    }) as typeof res.writeHead;
    serve(req, res);
  };
}
