import test from 'ava';
import { eventFromOutput, pushBodyProblem, topicGrant, topicProblem } from '../../engine/push/event.ts';

// Outputs as events, pusher bodies, topic names: table-driven over the rules in engine/push/event.ts.

const rows: Array<[string, string, ReturnType<typeof eventFromOutput>]> = [
  ['HL7 text is the one arg', 'MSH|^~\\&|A\rPID|1\r', { args: ['MSH|^~\\&|A\rPID|1\r'], kwargs: {} }],
  ['plain text', 'hello', { args: ['hello'], kwargs: {} }],
  ['an object is kwargs', '{"mrn":"M1","name":"DOE"}', { args: [], kwargs: { mrn: 'M1', name: 'DOE' } }],
  ['an array is args', '[1,"two",{"three":3}]', { args: [1, 'two', { three: 3 }], kwargs: {} }],
  ['a JSON string', '"quoted"', { args: ['quoted'], kwargs: {} }],
  ['a JSON number', '42', { args: [42], kwargs: {} }],
  ['null', 'null', { args: [null], kwargs: {} }],
  ['an envelope', '{"topic":"lab","args":[1],"kwargs":{"a":2}}', { topic: 'lab', args: [1], kwargs: { a: 2 } }],
  ['an envelope without topic', '{"args":["x"]}', { args: ['x'], kwargs: {} }],
  ['an envelope with a connection', '{"kwargs":{"a":1},"connectionId":"abc"}', { args: [], kwargs: { a: 1 }, connectionId: 'abc' }],
  ['an object with a topic among other keys is data', '{"topic":"lab","mrn":"M1"}', { args: [], kwargs: { topic: 'lab', mrn: 'M1' } }],
  ['only a connectionId is data', '{"connectionId":"abc"}', { args: [], kwargs: { connectionId: 'abc' } }],
  ['an empty object is empty kwargs', '{}', { args: [], kwargs: {} }],
  ['a malformed envelope', '{"topic":"lab","args":"x"}', 'the output is a push envelope but args must be an array'],
  ['an envelope with a bad topic', '{"topic":"Lab Results"}', 'the output is a push envelope but topic "Lab Results" must be dot-separated parts of a-z, 0-9, "_" and "-" (such as lab.results)'],
];

for (const [what, output, expected] of rows) {
  test(`output → event: ${what}`, (t) => {
    t.deepEqual(eventFromOutput(Buffer.from(output)), expected);
  });
}

test('pusher bodies: a JSON object with a topic and only the known keys', (t) => {
  t.is(pushBodyProblem(Buffer.from('{"topic":"news","args":["Hello"],"kwargs":{"a":1}}')), undefined);
  t.is(pushBodyProblem(Buffer.from('{"topic":"news"}')), undefined);
  t.is(pushBodyProblem(Buffer.from('{"topic":"news","connectionId":"x1"}')), undefined);
  t.is(pushBodyProblem(Buffer.from('{"topic":"news","connectionId":""}')), 'connectionId must be a non-empty string');
  t.is(pushBodyProblem(Buffer.from('{"topic":7}')), 'topic must be a string');
  t.is(pushBodyProblem(Buffer.from('{"topic":"news","kwargs":null}')), 'kwargs must be an object');
  t.is(pushBodyProblem(Buffer.from('null')), 'the body must be a JSON object such as {"topic": "news", "args": ["hello"]}');
  t.regex(pushBodyProblem(Buffer.from('{')) ?? '', /^the body is not JSON: /);
});

test('topic names and the grant that covers them', (t) => {
  for (const ok of ['adt', 'lab.results', 'lab.results.ward-5', 'a_b.c-d', '0']) t.is(topicProblem(ok), undefined, ok);
  for (const bad of ['', 'Lab', 'lab.', '.lab', 'lab..results', '-lab', 'lab results', 'lab/results', 'x'.repeat(201)]) {
    t.truthy(topicProblem(bad), bad);
  }
  t.is(topicGrant('lab.results.ward-5'), 'lab');
  t.is(topicGrant('adt'), 'adt');
});
