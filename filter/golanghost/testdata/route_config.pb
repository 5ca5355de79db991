
+type.googleapis.com/xds.type.v3.TypedStructù
$type.googleapis.com/sse.FilterConfigÐ

allow_credentials 
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
.
allowed_origins2
https://route.example

cache_control
no-store
o
exposed_headers\2Z
x-sse-replay
x-sse-stream
x-sse-unavailable
last-event-id
x-mercure-replay

max_age10m

stream_log_levelinfo


tag_headerx-sse-stream