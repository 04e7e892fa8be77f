-- keryx configuration. Keys follow the README's configuration table; environment
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
