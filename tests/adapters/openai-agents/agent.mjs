// A scripted agent for the tests: the real @openai/agents Runner with a Model that answers
// canned responses (the package ships no fake model; this implements its Model interface)
// and records every request's input. No network: tracing is off, no OpenAI client is made.
//
// As a child process: node agent.mjs BASE_URL SESSION_ID TURN  -> prints {"inputs": [...], "output": "..."}
import { Agent, run, tool, Usage, setTracingDisabled, setDefaultModelProvider } from "@openai/agents";
import { z } from "zod";
import { fileURLToPath } from "node:url";

setTracingDisabled(true);
setDefaultModelProvider({ getModel() { throw new Error("no real model in these tests"); } });

/** Canned model outputs per turn (one array per model call). */
export const SCRIPT = {
  1: [
    [{ type: "function_call", callId: "call_weather_1", name: "get_weather", arguments: JSON.stringify({ city: "Paris" }), status: "completed" }],
    [{ type: "message", role: "assistant", status: "completed", content: [{ type: "output_text", text: "It is sunny in Paris, 21 °C.", annotations: [] }] }],
  ],
  2: [[{ type: "message", role: "assistant", status: "completed", content: [{ type: "output_text", text: "You asked about Paris: sunny. 🌞", annotations: [] }] }]],
  3: [[{ type: "message", role: "assistant", status: "completed", content: [{ type: "output_text", text: "Third turn, numbers stay numbers: 1e21", annotations: [] }] }]],
};
export const USER = { 1: "What's the weather in Paris?", 2: "What did I just ask you?", 3: "And now?" };

export class ScriptedModel {
  constructor(turn) {
    this.replies = SCRIPT[turn].map((r) => structuredClone(r));
    this.inputs = [];
  }
  async getResponse(request) {
    this.inputs.push(JSON.parse(JSON.stringify(request.input)));
    const output = this.replies.shift();
    if (!output) throw new Error("the script has no more responses");
    return { usage: new Usage({ requests: 1, inputTokens: 10, outputTokens: 5, totalTokens: 15 }), output, responseId: `resp_${this.inputs.length}` };
  }
  async *getStreamedResponse() {
    throw new Error("streaming is not scripted");
  }
}

export function makeAgent(model) {
  const getWeather = tool({
    name: "get_weather",
    description: "The weather in a city",
    parameters: z.object({ city: z.string() }),
    execute: async ({ city }) => `sunny in ${city}, 21 °C`,
  });
  return new Agent({ name: "Weather", instructions: "Answer about the weather.", model, tools: [getWeather] });
}

/** One turn with `session`: the model's recorded inputs and the final output. */
export async function turn(session, n) {
  const model = new ScriptedModel(n);
  const result = await run(makeAgent(model), USER[n], { session });
  return { inputs: model.inputs, output: result.finalOutput };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [baseUrl, sessionId, n] = process.argv.slice(2);
  const { ReelSession } = await import("../../../clients/typescript/dist/adapters/openai-agents.js");
  const session = new ReelSession({ baseUrl, sessionId });
  const r = await turn(session, Number(n));
  await session.client.close();
  process.stdout.write(JSON.stringify(r));
}
