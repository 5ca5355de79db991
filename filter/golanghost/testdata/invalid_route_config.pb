
+type.googleapis.com/xds.type.v3.TypedStruct­
$type.googleapis.com/sse.FilterConfig„

allow_credentials 
.
allowed_origins2
https://route.example

cache_control
no-store
J
exposed_headers725
x-sse-replay
x-sse-stream
x-sse-unavailable

max_age	forever
Ó
pathsÉ2Æ
Ã*À
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
*
redact_query_params2
authorization

stream_log_levelinfo


tag_headerx-sse-stream