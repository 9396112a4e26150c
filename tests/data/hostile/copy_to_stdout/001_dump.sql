COPY (SELECT 1) TO stdout;
