-- keryx configuration. Keys follow the security guide's "Config Key" column; environment
-- variables (its "Env Var" column) override anything set here. See README.md for the table.
return {
    process = { name = "keryx-example" },
    server = {
        web = {
            port = 8080,
            host = "localhost",
        },
    },
}
