/**
 * zod with `.openapi()`: zod 4 gives each schema its methods when it is made, so the extension must run before any
 * schema that is documented is built. Every file in server/schemas/ takes `z` from here.
 */
import { extendZodWithOpenApi } from "@asteasolutions/zod-to-openapi";
import { z } from "zod";

extendZodWithOpenApi(z);

export { z };
