-- {{name}} — keryx configuration (optional: every key has a default). Keys follow the keryx
-- README's configuration table; environment variables override anything set here
-- (WEB_SERVER_PORT=9000 keryx start). A key keryx does not know is an error naming it.
return {
    process = { name = "{{name}}" },
    server = {
        web = {
            port = 8080,
            host = "localhost",
        },
    },
}
