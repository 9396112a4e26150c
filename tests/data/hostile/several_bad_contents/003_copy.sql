COPY t TO stdout;
