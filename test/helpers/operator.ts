/**
 * The history, OpenAPI and dashboard tests use the ordinary test facilitator with a policy
 * (AUTH=api-keys) and, for the browser, a real port: these names keep their imports readable.
 */
export {
  startTestFacilitator as startOperatorFacilitator,
  type TestFacilitator as OperatorFacilitator,
  type TestFacilitatorOptions as OperatorFacilitatorOptions,
} from "./facilitator.js";
