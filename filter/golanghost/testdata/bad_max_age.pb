
+type.googleapis.com/xds.type.v3.TypedStructﬁ

$type.googleapis.com/sse.FilterConfigµ


allow_credentials 
∞
allowed_originsú2ô
https://localhost:8080
http://localhost:8080
http://127.0.0.1:8080
https://localhost:8443
https://127.0.0.1:8443
http://localhost:3000

cache_control
no-cache
J
exposed_headers725
x-sse-replay
x-sse-stream
x-sse-unavailable
¿
extract¥*±

paths
2
/v1/
ô
rulesè2å
7*5

keytotal_tokens

pathusage.total_tokens
9*7

keyprompt_tokens

pathusage.prompt_tokens
A*?

keycompletion_tokens
!
pathusage.completion_tokens
S*Q

eventmessage_delta

keyoutput_tokens

pathusage.output_tokens

max_age	forever
æ
paths¥2±
√*¿
z
allowed_headersg2e

Keep-Alive
X-Requested-With
Cache-Control
Content-Type
Last-Event-ID
Authorization
/
allowed_methods2
GET
POST
	OPTIONS
o
exposed_headers\2Z
x-sse-replay
x-sse-stream
x-sse-unavailable
last-event-id
x-mercure-replay
 
prefix/.well-known/mercure
Ë*Â
[
allowed_headersH2F
Content-Type
Authorization
X-Requested-With
Cache-Control
(
allowed_methods2
POST
	OPTIONS
:
exposed_headers'2%
x-sse-stream
x-sse-unavailable
 
prefix/v1/chat/completions
*
redact_query_params2
authorization

stream_log_levelinfo


tag_headerx-sse-stream