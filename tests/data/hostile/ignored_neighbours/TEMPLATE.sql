{{not sql}}
